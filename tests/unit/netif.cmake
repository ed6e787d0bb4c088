# RXP_SOCKET_IFNAME and the address plan over made-up interface lists.
rxp_add_test(test_netif SOURCES ${RXP_TEST_DIR}/test_netif.c
  LINK rxp_netif rxp_util LABELS unit)
