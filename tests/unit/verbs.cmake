# Verbs transport (transport/verbs).
#  test_verbs_mock  the transport on a fake fabric (test_verbs_fake.c):
#                   data path, credits, every failure path; no device
#  test_verbs_live  a real device (the rxe guest: ci/rxe-vm.sh -- ctest
#                   -L verbs); exits 77 without one
if(TARGET rxp_verbs)
  set(_vf ${RXP_TEST_DIR}/test_verbs_fake.c ${RXP_TEST_DIR}/test_verbs_fake_cm.c
    ${RXP_TEST_DIR}/test_verbs_fx.c ${PROJECT_SOURCE_DIR}/tests/helpers/tp_fx.c)
  rxp_add_test(test_verbs_mock
    SOURCES ${RXP_TEST_DIR}/test_verbs_mock.c ${_vf}
    LINK rxp_verbs rxp_auth rxp_util LABELS unit TIMEOUT 60)
  rxp_add_test(test_verbs_proto
    SOURCES ${RXP_TEST_DIR}/test_verbs_proto.c ${_vf}
    LINK rxp_verbs rxp_auth rxp_util LABELS unit TIMEOUT 60)
  rxp_add_test(test_verbs_dev
    SOURCES ${RXP_TEST_DIR}/test_verbs_dev.c ${_vf}
    LINK rxp_verbs rxp_auth rxp_util LABELS unit TIMEOUT 30)
  rxp_add_test(test_verbs_live
    SOURCES ${RXP_TEST_DIR}/test_verbs_live.c ${PROJECT_SOURCE_DIR}/tests/helpers/tp_fx.c
    LINK rxp_verbs rxp_auth rxp_util LABELS verbs TIMEOUT 300)
endif()
