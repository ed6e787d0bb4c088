# shm transport: a hostile peer, by hand (the conformance and agent suites
# run on shm too: tests/conformance, tests/integration)
if(TARGET rxp_verbs)
  set(_rxp_shm_verbs rxp_verbs)
else()
  set(_rxp_shm_verbs rxp_verbs_none)
endif()
rxp_add_test(test_shm_proto SOURCES ${RXP_TEST_DIR}/test_shm_proto.c
  LINK rxp_transport rxp_tcp rxp_shm rxp_mux rxp_fault rxp_auth rxp_util ${_rxp_shm_verbs}
  LABELS unit TIMEOUT 60 ENV RXP_LOG=error)
target_include_directories(test_shm_proto PRIVATE ${PROJECT_SOURCE_DIR}/transport/shm)
