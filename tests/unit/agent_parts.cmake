rxp_add_test(test_agent_parts SOURCES ${RXP_TEST_DIR}/test_agent_parts.c LABELS unit)
