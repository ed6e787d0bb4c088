# Transport conformance: one suite, run on every backend.
if(TARGET rxp_verbs)
  set(_rxp_tp_verbs rxp_verbs)
else()
  set(_rxp_tp_verbs rxp_verbs_none)
endif()
set(_rxp_tp_src ${RXP_TEST_DIR}/test_transport.c ${RXP_TEST_DIR}/tp_harness.c)
set(_rxp_tp_link rxp_transport rxp_tcp rxp_shm rxp_mux rxp_fault rxp_auth rxp_util ${_rxp_tp_verbs})
rxp_add_test(test_transport SOURCES ${_rxp_tp_src} LINK ${_rxp_tp_link}
  LABELS conformance TIMEOUT 120 ENV RXP_TEST_TRANSPORT=tcp)
rxp_add_test(test_transport SOURCES ${_rxp_tp_src} LINK ${_rxp_tp_link}
  LABELS conformance TIMEOUT 120 ENV RXP_TEST_TRANSPORT=tcp-poll)
rxp_add_test(test_transport SOURCES ${_rxp_tp_src} LINK ${_rxp_tp_link}
  LABELS conformance verbs TIMEOUT 120 ENV RXP_TEST_TRANSPORT=verbs)
rxp_add_test(test_transport SOURCES ${_rxp_tp_src} LINK ${_rxp_tp_link}
  LABELS conformance TIMEOUT 120 ENV RXP_TEST_TRANSPORT=shm)
# shm with cross-memory attach off: storages through the ring, as when the
# kernel refuses process_vm_readv (Yama, containers)
rxp_add_test(test_transport SOURCES ${_rxp_tp_src} LINK ${_rxp_tp_link}
  LABELS conformance TIMEOUT 120 ENV RXP_TEST_TRANSPORT=shm RXP_SHM_CMA=0)
rxp_add_test(test_transport SOURCES ${_rxp_tp_src} LINK ${_rxp_tp_link}
  LABELS conformance TIMEOUT 120 ENV RXP_TEST_TRANSPORT=fault:shm)
target_include_directories(test_transport PRIVATE ${RXP_TEST_DIR})
# the SEND_ZC path (off by default, see docs/tcp.md) through the same suite
rxp_add_test(test_transport SOURCES ${_rxp_tp_src} LINK ${_rxp_tp_link}
  LABELS conformance TIMEOUT 120 ENV RXP_TEST_TRANSPORT=tcp RXP_TCP_ZC_THRESHOLD=65536)
# the fault transport with no rules must meet the same contract (issue 8)
rxp_add_test(test_transport SOURCES ${_rxp_tp_src} LINK ${_rxp_tp_link}
  LABELS conformance TIMEOUT 120 ENV RXP_TEST_TRANSPORT=fault:tcp)
