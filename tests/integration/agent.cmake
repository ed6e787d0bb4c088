# The agent conformance suite, once per transport. The verbs run skips
# (77) without an RDMA device; CI runs it inside the rxe guest.
set(agent_srcs ${RXP_TEST_DIR}/test_agent.c ${PROJECT_SOURCE_DIR}/tests/helpers/world.c)
# SERIAL: the suite checks timeout precision (10% + 50 ms), which a
# parallel 64 MiB echo on a 2-core machine can spoil
rxp_add_test(test_agent SOURCES ${agent_srcs} LABELS integration conformance
  TIMEOUT 120 SERIAL ENV RXP_TRANSPORT=tcp)
rxp_add_test(test_agent SOURCES ${agent_srcs} LABELS integration conformance
  TIMEOUT 120 SERIAL ENV RXP_TRANSPORT=tcp RXP_NO_URING=1)
rxp_add_test(test_agent SOURCES ${agent_srcs} LABELS integration verbs
  TIMEOUT 600 ENV RXP_TRANSPORT=verbs)

# remote()/RRefs, profiler, autograd metadata: three workers
set(rref_srcs ${RXP_TEST_DIR}/test_rref.c ${PROJECT_SOURCE_DIR}/tests/helpers/world.c)
rxp_add_test(test_rref SOURCES ${rref_srcs} LABELS integration conformance
  TIMEOUT 180 ENV RXP_TRANSPORT=tcp)
rxp_add_test(test_rref SOURCES ${rref_srcs} LABELS integration verbs
  TIMEOUT 900 ENV RXP_TRANSPORT=verbs)

# allocation-failure sweep over agent creation, and warm calls allocate nothing
rxp_add_test(test_agent_oom SOURCES ${RXP_TEST_DIR}/test_agent_oom.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration
  TIMEOUT 120 ENV RXP_TRANSPORT=tcp RXP_LOG=error)

# the agent's error paths, through the fault transport over tcp
rxp_add_test(test_faults SOURCES ${RXP_TEST_DIR}/test_faults.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 120 ENV RXP_TRANSPORT=tcp)

# who may talk to a worker: job-secret authentication, forged responses
rxp_add_test(test_auth SOURCES ${RXP_TEST_DIR}/test_auth.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 120 ENV RXP_TRANSPORT=tcp)
rxp_add_test(test_auth SOURCES ${RXP_TEST_DIR}/test_auth.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 120 ENV RXP_TRANSPORT=tcp RXP_NO_URING=1)

# peers that stop reading: deadlines hold, other peers are not delayed
# (SERIAL: timing bounds, and 70,000 calls in flight)
rxp_add_test(test_stuck SOURCES ${RXP_TEST_DIR}/test_stuck.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 180 SERIAL ENV RXP_TRANSPORT=tcp)
rxp_add_test(test_stuck SOURCES ${RXP_TEST_DIR}/test_stuck.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 180 SERIAL ENV RXP_TRANSPORT=tcp RXP_NO_URING=1)

# calls over a lossy link: a soak here; ci/loss-test.sh runs it with netem
# in the rxe guest over tcp and verbs (issue 12 item 9)
rxp_add_test(test_loss SOURCES ${RXP_TEST_DIR}/test_loss.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 300 ENV RXP_TRANSPORT=tcp)

# the pool-queue budget: a slow caller's queued calls are capped and do
# not delay another caller's (SERIAL: timing bounds)
rxp_add_test(test_pool_budget SOURCES ${RXP_TEST_DIR}/test_pool_budget.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 120 SERIAL ENV RXP_TRANSPORT=tcp)

# the same suites over shm: every worker of these worlds is on this host
# (issue 11). test_auth stays on tcp: it speaks the tcp wire by hand.
rxp_add_test(test_agent SOURCES ${agent_srcs} LABELS integration conformance
  TIMEOUT 120 SERIAL ENV RXP_TRANSPORT=shm)
rxp_add_test(test_rref SOURCES ${rref_srcs} LABELS integration conformance
  TIMEOUT 180 ENV RXP_TRANSPORT=shm)
rxp_add_test(test_faults SOURCES ${RXP_TEST_DIR}/test_faults.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 120 ENV RXP_TRANSPORT=shm)
rxp_add_test(test_stuck SOURCES ${RXP_TEST_DIR}/test_stuck.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 180 SERIAL ENV RXP_TRANSPORT=shm)
rxp_add_test(test_agent_oom SOURCES ${RXP_TEST_DIR}/test_agent_oom.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration
  TIMEOUT 120 ENV RXP_TRANSPORT=shm RXP_LOG=error)
rxp_add_test(test_pool_budget SOURCES ${RXP_TEST_DIR}/test_pool_budget.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c LABELS integration conformance
  TIMEOUT 120 SERIAL ENV RXP_TRANSPORT=shm)
# the default: tcp with shm beside it, every peer here reached by shm
# (transport/mux; twohost.sh runs a world where one peer is not)
rxp_add_test(test_agent SOURCES ${agent_srcs} LABELS integration conformance
  TIMEOUT 120 SERIAL ENV RXP_TRANSPORT=auto)
rxp_add_test(test_rref SOURCES ${rref_srcs} LABELS integration conformance
  TIMEOUT 180 ENV RXP_TRANSPORT=auto)
