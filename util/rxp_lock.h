/* SPDX-License-Identifier: MIT */
/*
 * Annotated locks, checked by clang's -Wthread-safety (an error under
 * RXP_WERROR; see CMakeLists.txt). The threading contract they check is
 * in docs/DESIGN.md, "Threads". With gcc the annotations are empty.
 *
 * Two kinds of capability:
 *  - struct rxp_mutex itself: rxp_mutex_lock(&m) acquires "m". Use it for
 *    a lock whose guarded data are globals (RXP_GUARDED_BY(m) on a global
 *    or a static) or a function's parameters (RXP_REQUIRES(p->mu)).
 *  - a lock class, declared with RXP_LOCK_CLASS(cls) / RXP_RWLOCK_CLASS(cls).
 *    clang before 19 cannot name a sibling field in the attribute of a
 *    struct member in C ("use of undeclared identifier"), so a field that
 *    a lock inside the same struct guards says RXP_GUARDED_BY(cls), and
 *    that lock is taken with cls_lock(&obj->mu). The analysis then checks
 *    "some lock of this class is held" rather than "this object's lock":
 *    it catches a field touched with no lock, or with a lock of another
 *    class, but not one object's field touched under another object's
 *    lock of the same class.
 *
 * Where the code touches a guarded field without its lock on purpose
 * (single-threaded init and teardown), it does so in a small function
 * marked RXP_NO_THREAD_SAFETY_ANALYSIS with a comment saying why; never
 * on a whole file.
 */
#ifndef RXP_LOCK_H
#define RXP_LOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#if defined(__clang__)
#define RXP_TSA_(x) __attribute__((x))
#else
#define RXP_TSA_(x)
#endif

#define RXP_CAPABILITY(x) RXP_TSA_(capability(x))
#define RXP_GUARDED_BY(x) RXP_TSA_(guarded_by(x))
#define RXP_PT_GUARDED_BY(x) RXP_TSA_(pt_guarded_by(x))
#define RXP_REQUIRES(...) RXP_TSA_(requires_capability(__VA_ARGS__))
#define RXP_REQUIRES_SHARED(...)                                               \
	RXP_TSA_(requires_shared_capability(__VA_ARGS__))
#define RXP_ACQUIRE(...) RXP_TSA_(acquire_capability(__VA_ARGS__))
#define RXP_ACQUIRE_SHARED(...) RXP_TSA_(acquire_shared_capability(__VA_ARGS__))
#define RXP_RELEASE(...) RXP_TSA_(release_capability(__VA_ARGS__))
#define RXP_RELEASE_SHARED(...) RXP_TSA_(release_shared_capability(__VA_ARGS__))
#define RXP_TRY_ACQUIRE(...) RXP_TSA_(try_acquire_capability(__VA_ARGS__))
#define RXP_EXCLUDES(...) RXP_TSA_(locks_excluded(__VA_ARGS__))
/* the function checks (or knows) that the capability is held */
#define RXP_ASSERT_HELD(...) RXP_TSA_(assert_capability(__VA_ARGS__))
#define RXP_NO_THREAD_SAFETY_ANALYSIS RXP_TSA_(no_thread_safety_analysis)

/* ------------------------------------------------------------- mutex */

struct RXP_CAPABILITY("mutex") rxp_mutex {
	pthread_mutex_t m;
};
#define RXP_MUTEX_INITIALIZER                                                  \
	{                                                                      \
		PTHREAD_MUTEX_INITIALIZER                                      \
	}

/* The wrappers' bodies are outside the analysis: they are the primitives
 * it reasons with (it would see pthread calls it knows nothing of). */

static inline int rxp_mutex_init(struct rxp_mutex *m)
{
	return -pthread_mutex_init(&m->m, NULL);
}

static inline void rxp_mutex_destroy(struct rxp_mutex *m)
{
	pthread_mutex_destroy(&m->m);
}

static inline void rxp_mutex_lock(struct rxp_mutex *m) RXP_ACQUIRE(*m);
RXP_NO_THREAD_SAFETY_ANALYSIS static inline void
rxp_mutex_lock(struct rxp_mutex *m)
{
	pthread_mutex_lock(&m->m);
}

static inline void rxp_mutex_unlock(struct rxp_mutex *m) RXP_RELEASE(*m);
RXP_NO_THREAD_SAFETY_ANALYSIS static inline void
rxp_mutex_unlock(struct rxp_mutex *m)
{
	pthread_mutex_unlock(&m->m);
}

/* true if locked */
static inline bool rxp_mutex_trylock(struct rxp_mutex *m)
	RXP_TRY_ACQUIRE(true, *m);
RXP_NO_THREAD_SAFETY_ANALYSIS static inline bool
rxp_mutex_trylock(struct rxp_mutex *m)
{
	return pthread_mutex_trylock(&m->m) == 0;
}

/* ------------------------------------------------------- lock classes */

/* the classes' wrappers: outside the analysis (see above), and not all
 * used by every file that declares a class */
#define RXP_LOCK_FN_                                                           \
	RXP_NO_THREAD_SAFETY_ANALYSIS __attribute__((unused)) static inline

/* A token that names a class of locks; never defined, only named in
 * attributes (which do not evaluate it). */
struct RXP_CAPABILITY("mutex") rxp_lock_class {
	char unused_;
};

/*
 * RXP_LOCK_CLASS(cls) declares the token cls and, on a struct rxp_mutex
 * of that class: cls_lock(), cls_unlock(), cls_trylock() (true if locked),
 * cls_wait() and cls_timedwait() (pthread_cond_*wait: the lock is held
 * before and after) and cls_assert_held() (no code: for a path where the
 * lock is known held but the analysis cannot see it, such as a callback
 * the lock holder calls through a function pointer).
 */
#define RXP_LOCK_CLASS(cls)                                                    \
	extern struct rxp_lock_class cls;                                      \
	static inline void cls##_lock(struct rxp_mutex *m) RXP_ACQUIRE(cls);   \
	RXP_LOCK_FN_ void cls##_lock(struct rxp_mutex *m)                      \
	{                                                                      \
		pthread_mutex_lock(&m->m);                                     \
	}                                                                      \
	static inline void cls##_unlock(struct rxp_mutex *m) RXP_RELEASE(cls); \
	RXP_LOCK_FN_ void cls##_unlock(struct rxp_mutex *m)                    \
	{                                                                      \
		pthread_mutex_unlock(&m->m);                                   \
	}                                                                      \
	static inline bool cls##_trylock(struct rxp_mutex *m)                  \
		RXP_TRY_ACQUIRE(true, cls);                                    \
	RXP_LOCK_FN_ bool cls##_trylock(struct rxp_mutex *m)                   \
	{                                                                      \
		return pthread_mutex_trylock(&m->m) == 0;                      \
	}                                                                      \
	static inline int cls##_wait(pthread_cond_t *cv, struct rxp_mutex *m)  \
		RXP_REQUIRES(cls);                                             \
	RXP_LOCK_FN_ int cls##_wait(pthread_cond_t *cv, struct rxp_mutex *m)   \
	{                                                                      \
		return -pthread_cond_wait(cv, &m->m);                          \
	}                                                                      \
	static inline int cls##_timedwait(                                     \
		pthread_cond_t *cv, struct rxp_mutex *m,                       \
		const struct timespec *abs) RXP_REQUIRES(cls);                 \
	RXP_LOCK_FN_ int cls##_timedwait(pthread_cond_t *cv,                   \
					 struct rxp_mutex *m,                  \
					 const struct timespec *abs)           \
	{                                                                      \
		return -pthread_cond_timedwait(cv, &m->m, abs);                \
	}                                                                      \
	static inline void cls##_assert_held(void) RXP_ASSERT_HELD(cls);       \
	RXP_LOCK_FN_ void cls##_assert_held(void)                              \
	{                                                                      \
	}                                                                      \
	struct rxp_lock_class

/* ------------------------------------------------------------ rwlock */

struct RXP_CAPABILITY("rwlock") rxp_rwlock {
	pthread_rwlock_t l;
};

static inline int rxp_rwlock_init(struct rxp_rwlock *l)
{
	return -pthread_rwlock_init(&l->l, NULL);
}

static inline void rxp_rwlock_destroy(struct rxp_rwlock *l)
{
	pthread_rwlock_destroy(&l->l);
}

/* RXP_RWLOCK_CLASS(cls): the token cls and, on a struct rxp_rwlock of that
 * class, cls_rdlock() / cls_rdunlock() (shared) and cls_wrlock() /
 * cls_wrunlock() (exclusive). */
#define RXP_RWLOCK_CLASS(cls)                                                  \
	extern struct rxp_lock_class cls;                                      \
	static inline void cls##_rdlock(struct rxp_rwlock *l)                  \
		RXP_ACQUIRE_SHARED(cls);                                       \
	RXP_LOCK_FN_ void cls##_rdlock(struct rxp_rwlock *l)                   \
	{                                                                      \
		pthread_rwlock_rdlock(&l->l);                                  \
	}                                                                      \
	static inline void cls##_rdunlock(struct rxp_rwlock *l)                \
		RXP_RELEASE_SHARED(cls);                                       \
	RXP_LOCK_FN_ void cls##_rdunlock(struct rxp_rwlock *l)                 \
	{                                                                      \
		pthread_rwlock_unlock(&l->l);                                  \
	}                                                                      \
	static inline void cls##_wrlock(struct rxp_rwlock *l)                  \
		RXP_ACQUIRE(cls);                                              \
	RXP_LOCK_FN_ void cls##_wrlock(struct rxp_rwlock *l)                   \
	{                                                                      \
		pthread_rwlock_wrlock(&l->l);                                  \
	}                                                                      \
	static inline void cls##_wrunlock(struct rxp_rwlock *l)                \
		RXP_RELEASE(cls);                                              \
	RXP_LOCK_FN_ void cls##_wrunlock(struct rxp_rwlock *l)                 \
	{                                                                      \
		pthread_rwlock_unlock(&l->l);                                  \
	}                                                                      \
	struct rxp_lock_class

#endif
