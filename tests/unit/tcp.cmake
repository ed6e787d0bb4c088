# TCP transport unit tests (raw-socket peers, fault injection, wire/pool).
if(TARGET rxp_verbs)
  set(_rxp_tcp_verbs rxp_verbs)
else()
  set(_rxp_tcp_verbs rxp_verbs_none)
endif()
set(_rxp_tcp_link rxp_transport rxp_tcp rxp_shm rxp_mux rxp_fault rxp_auth rxp_util ${_rxp_tcp_verbs})
set(_rxp_tcp_help ${RXP_TEST_DIR}/tcp_raw.c ${PROJECT_SOURCE_DIR}/tests/conformance/tp_harness.c)
foreach(t test_tcp_proto test_tcp_fault test_tcp_wire)
  if(EXISTS ${RXP_TEST_DIR}/${t}.c)
    rxp_add_test(${t} SOURCES ${RXP_TEST_DIR}/${t}.c ${_rxp_tcp_help}
      LINK ${_rxp_tcp_link} LABELS unit TIMEOUT 60)
    target_include_directories(${t} PRIVATE ${RXP_TEST_DIR} ${PROJECT_SOURCE_DIR}/tests/conformance)
  endif()
endforeach()
# budgets: measures CPU time while accept() is at the fd limit, so alone
rxp_add_test(test_tcp_limits SOURCES ${RXP_TEST_DIR}/test_tcp_limits.c ${_rxp_tcp_help}
  LINK ${_rxp_tcp_link} LABELS unit TIMEOUT 60 SERIAL)
target_include_directories(test_tcp_limits PRIVATE ${RXP_TEST_DIR} ${PROJECT_SOURCE_DIR}/tests/conformance)
