/* SPDX-License-Identifier: MIT */
/*
 * RXP_METRICS_FILE: the agent rewrites that file with its metrics in the
 * Prometheus text format (for node_exporter's textfile collector, or a
 * sidecar) at start, every RXP_METRICS_INTERVAL_MS, and at shutdown.
 * Atomically: a temporary file beside it, then rename(2), so a reader sees
 * the old snapshot or the new one, never a part.
 *
 * No thread of its own: the polling thread notices the time (its sleep
 * ends by then: next_timeout_ms) and queues one write on the worker pool,
 * so the file's I/O never stalls progress; a write still queued or
 * running when the next is due is not doubled. Shutdown writes the last
 * snapshot itself, before the transport closes (its counters go with it),
 * and from then on a queued write does nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_int.h"

#define DEFAULT_INTERVAL_MS 10000

RXP_LOCK_CLASS(rxp__mexport);

struct rxp__mexport {
	struct rxp_agent *a;
	int64_t interval_ns;
	atomic_bool queued; /* a write is on the pool */
	/* class rxp__mexport: one write at a time, and the state below */
	struct rxp_mutex mu;
	bool closed RXP_GUARDED_BY(rxp__mexport);
	int last_err RXP_GUARDED_BY(rxp__mexport); /* logged when it changes */
	char path[PATH_MAX], tmp[PATH_MAX + 32];
};

/* @spec with %r (rank), %n (worker name), %p (pid), %% expanded; whether
 * it names the worker */
static int expand(const struct rxp_agent *a, const char *spec, char *out,
		  size_t cap, bool *per_worker)
{
	size_t n = 0;

	*per_worker = false;
	for (const char *s = spec; *s; s++) {
		char one[160];
		const char *add = one;

		if (*s != '%') {
			one[0] = *s;
			one[1] = '\0';
		} else if (s[1] == 'r' || s[1] == 'p') {
			snprintf(one, sizeof(one), "%d",
				 s[1] == 'r' ? a->rank : (int)getpid());
			*per_worker = true;
			s++;
		} else if (s[1] == 'n') {
			add = a->name;
			*per_worker = true;
			s++;
		} else if (s[1] == '%') {
			add = "%";
			s++;
		} else {
			rxp_err("metrics",
				"RXP_METRICS_FILE=%s: '%%%c' is not one of "
				"%%r (rank), %%n (name), %%p (pid), %%%%",
				spec, s[1] ? s[1] : ' ');
			return -EINVAL;
		}
		if (n + strlen(add) >= cap) {
			rxp_err("metrics", "RXP_METRICS_FILE=%s: too long",
				spec);
			return -EINVAL;
		}
		memcpy(out + n, add, strlen(add));
		n += strlen(add);
	}
	out[n] = '\0';
	return 0;
}

/* Before the agent's threads start: no one else sees @m yet. */
RXP_NO_THREAD_SAFETY_ANALYSIS static void init_state(struct rxp__mexport *m)
{
	m->closed = false;
	m->last_err = 0;
}

int rxp__mexport_config(struct rxp_agent *a)
{
	const char *spec = getenv("RXP_METRICS_FILE");
	struct rxp__mexport *m;
	bool per_worker;
	long ms;
	int ret;

	/* checked without a file too: a typo should not wait for the day
	 * the file is set */
	ret = rxp_env_int("RXP_METRICS_INTERVAL_MS", 10, 86400000,
			  DEFAULT_INTERVAL_MS, &ms);
	if (ret || !spec || !*spec)
		return ret;
	m = rxp__calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	ret = expand(a, spec, m->path, sizeof(m->path), &per_worker);
	if (ret) {
		rxp__free(m);
		return ret;
	}
	snprintf(m->tmp, sizeof(m->tmp), "%s.tmp.%d.%d", m->path, (int)getpid(),
		 a->rank);
	m->a = a;
	m->interval_ns = (int64_t)ms * 1000000;
	atomic_init(&m->queued, false);
	rxp_mutex_init(&m->mu);
	init_state(m);
	a->mexport = m;
	rxp_info("metrics", "writing %s every %ld ms (Prometheus text)%s",
		 m->path, ms,
		 per_worker || a->world == 1
			 ? ""
			 : "; it has no %r or %n: workers on one host "
			   "overwrite each other's");
	return 0;
}

static int write_file(struct rxp__mexport *m) RXP_REQUIRES(rxp__mexport)
{
	int fd = open(m->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret;

	if (fd < 0)
		return -errno;
	ret = rxp_agent_metrics_write(m->a, fd, RXP_METRICS_PROMETHEUS);
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret && rename(m->tmp, m->path))
		ret = -errno;
	if (ret)
		unlink(m->tmp);
	return ret;
}

static void export_once(struct rxp__mexport *m) RXP_REQUIRES(rxp__mexport)
{
	int ret = write_file(m);

	if (ret && ret != m->last_err)
		rxp_warn("metrics", "cannot write RXP_METRICS_FILE %s: %s",
			 m->path, rxp_strerror(ret));
	else if (!ret && m->last_err)
		rxp_info("metrics", "%s written again", m->path);
	m->last_err = ret;
}

void rxp__mexport_first(struct rxp_agent *a)
{
	struct rxp__mexport *m = a->mexport;

	if (!m)
		return;
	rxp__mexport_lock(&m->mu);
	export_once(m); /* the file exists from the start */
	rxp__mexport_unlock(&m->mu);
}

/* a worker-pool task */
static void export_task(void *arg)
{
	struct rxp__mexport *m = arg;

	rxp__mexport_lock(&m->mu);
	if (!m->closed)
		export_once(m);
	rxp__mexport_unlock(&m->mu);
	atomic_store(&m->queued, false);
}

int64_t rxp__mexport_due(struct rxp_agent *a, int64_t now)
{
	struct rxp__mexport *m = a->mexport;

	if (!m)
		return INT64_MAX;
	if (!atomic_exchange(&m->queued, true) &&
	    rxp__pool_push(&a->pool, export_task, m))
		atomic_store(&m->queued, false);
	return now + m->interval_ns;
}

int64_t rxp__mexport_first_due(const struct rxp_agent *a, int64_t now)
{
	return a->mexport ? now + a->mexport->interval_ns : INT64_MAX;
}

void rxp__mexport_close(struct rxp_agent *a)
{
	struct rxp__mexport *m = a->mexport;

	if (!m)
		return;
	rxp__mexport_lock(&m->mu);
	if (!m->closed) {
		m->closed = true;
		export_once(m);
	}
	rxp__mexport_unlock(&m->mu);
}

void rxp__mexport_free(struct rxp_agent *a)
{
	struct rxp__mexport *m = a->mexport;

	if (!m)
		return;
	rxp_mutex_destroy(&m->mu);
	rxp__free(m);
	a->mexport = NULL;
}
