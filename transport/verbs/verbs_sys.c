/* SPDX-License-Identifier: MIT */
/*
 * The default table of libibverbs/librdmacm entry points. Several verbs
 * are static inline functions in <infiniband/verbs.h>; they get small
 * wrappers here so the table can point at them.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rxp_lock.h"
#include "verbs.h"

static const char *sys_get_device_name(struct ibv_device *dev)
{
	return ibv_get_device_name(dev);
}

static int sys_query_port(struct ibv_context *ctx, uint8_t port,
			  struct ibv_port_attr *attr)
{
	return ibv_query_port(ctx, port, attr);
}

static ssize_t sys_query_gid_table(struct ibv_context *ctx,
				   struct ibv_gid_entry *ent, size_t max)
{
	return ibv_query_gid_table(ctx, ent, max, 0);
}

static struct ibv_mr *sys_reg_mr(struct ibv_pd *pd, void *addr, size_t len,
				 int access)
{
	return ibv_reg_mr(pd, addr, len, access);
}

static int sys_req_notify_cq(struct ibv_cq *cq, int solicited)
{
	return ibv_req_notify_cq(cq, solicited);
}

static int sys_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	return ibv_poll_cq(cq, n, wc);
}

static int sys_post_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr,
			     struct ibv_recv_wr **bad)
{
	return ibv_post_srq_recv(srq, wr, bad);
}

static int sys_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
			 struct ibv_send_wr **bad)
{
	return ibv_post_send(qp, wr, bad);
}

static uint16_t sys_get_src_port(struct rdma_cm_id *id)
{
	return rdma_get_src_port(id);
}

const struct verbs_sys verbs_sys_default = {
	.get_device_list = ibv_get_device_list,
	.free_device_list = ibv_free_device_list,
	.get_device_name = sys_get_device_name,
	.open_device = ibv_open_device,
	.close_device = ibv_close_device,
	.query_device = ibv_query_device,
	.query_port = sys_query_port,
	.query_gid_table = sys_query_gid_table,
	.fork_init = ibv_fork_init,
	.is_fork_initialized = ibv_is_fork_initialized,
	.alloc_pd = ibv_alloc_pd,
	.dealloc_pd = ibv_dealloc_pd,
	.reg_mr = sys_reg_mr,
	.dereg_mr = ibv_dereg_mr,
	.create_comp_channel = ibv_create_comp_channel,
	.destroy_comp_channel = ibv_destroy_comp_channel,
	.create_cq = ibv_create_cq,
	.destroy_cq = ibv_destroy_cq,
	.req_notify_cq = sys_req_notify_cq,
	.poll_cq = sys_poll_cq,
	.get_cq_event = ibv_get_cq_event,
	.ack_cq_events = ibv_ack_cq_events,
	.create_srq = ibv_create_srq,
	.destroy_srq = ibv_destroy_srq,
	.post_srq_recv = sys_post_srq_recv,
	.post_send = sys_post_send,
	.create_event_channel = rdma_create_event_channel,
	.destroy_event_channel = rdma_destroy_event_channel,
	.create_id = rdma_create_id,
	.destroy_id = rdma_destroy_id,
	.bind_addr = rdma_bind_addr,
	.listen = rdma_listen,
	.resolve_addr = rdma_resolve_addr,
	.resolve_route = rdma_resolve_route,
	.create_qp = rdma_create_qp,
	.destroy_qp = rdma_destroy_qp,
	.connect = rdma_connect,
	.accept = rdma_accept,
	.set_option = rdma_set_option,
	.reject = rdma_reject,
	.disconnect = rdma_disconnect,
	.get_cm_event = rdma_get_cm_event,
	.ack_cm_event = rdma_ack_cm_event,
	.get_src_port = sys_get_src_port,
	.get_devices = rdma_get_devices,
	.free_devices = rdma_free_devices,
};

static const struct verbs_sys *cur_sys;

const struct verbs_sys *verbs_sys_get(void)
{
	return cur_sys ? cur_sys : &verbs_sys_default;
}

void verbs_sys_set(const struct verbs_sys *sys)
{
	cur_sys = sys;
}

/*
 * librdmacm opens a device's context the first time an id is bound to it
 * and keeps it for the life of the process. A child forked after that
 * inherits the parent's context for that device, and the kernel refuses
 * its commands on it (EACCES from the uverbs write path, e.g. rxe's
 * doorbell on post_send). So remember which process first used each
 * device through librdmacm, and refuse (with the reason) in a child.
 */
static struct rxp_mutex cm_mu = RXP_MUTEX_INITIALIZER;
static struct {
	char dev[64];
	pid_t pid;
} cm_used[16] RXP_GUARDED_BY(cm_mu);

int verbs_cm_claim(const char *dev)
{
	pid_t me = getpid();
	int ret = 0;
	unsigned i;

	rxp_mutex_lock(&cm_mu);
	for (i = 0; i < RXP_ARRAY_SIZE(cm_used) && cm_used[i].pid; i++)
		if (!strcmp(cm_used[i].dev, dev))
			break;
	if (i == RXP_ARRAY_SIZE(cm_used)) {
		/* table full: nothing to remember, nothing to refuse */
	} else if (!cm_used[i].pid) {
		snprintf(cm_used[i].dev, sizeof(cm_used[i].dev), "%s", dev);
		cm_used[i].pid = me;
	} else if (cm_used[i].pid != me) {
		rxp_err(VERBS_LOG,
			"%s was opened through librdmacm by pid %d, "
			"of which this process is a fork: the context is the "
			"parent's and cannot be used here (fork before any "
			"verbs use, or exec)",
			dev, (int)cm_used[i].pid);
		ret = -EPERM;
	}
	rxp_mutex_unlock(&cm_mu);
	return ret;
}
