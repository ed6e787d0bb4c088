rxp_add_test(test_util SOURCES ${RXP_TEST_DIR}/test_util.c LINK rxp_util LABELS unit)
rxp_add_test(test_abi SOURCES ${RXP_TEST_DIR}/test_abi.c LABELS unit)
