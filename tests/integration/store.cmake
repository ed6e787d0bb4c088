# Rendezvous through a framework's store (attr.store): worlds of threads
# and of forked processes on tests/helpers/test_store.c, no rendezvous port.
set(store_srcs ${RXP_TEST_DIR}/test_store.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/world.c
  ${PROJECT_SOURCE_DIR}/tests/helpers/test_store.c)
rxp_add_test(test_store SOURCES ${store_srcs} LABELS integration conformance
  TIMEOUT 180 ENV RXP_TRANSPORT=tcp)
rxp_add_test(test_store SOURCES ${store_srcs} LABELS integration conformance
  TIMEOUT 180 ENV RXP_TRANSPORT=tcp RXP_NO_URING=1)
