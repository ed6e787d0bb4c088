# The built-in rendezvous against hostile and broken peers (raw sockets,
# a fake rank 0); rendezvous, auth and util alone.
rxp_add_test(test_rendezvous SOURCES ${RXP_TEST_DIR}/test_rendezvous.c
  LINK rxp_rendezvous rxp_auth rxp_util LABELS unit TIMEOUT 60)
