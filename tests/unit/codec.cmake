# Value codec (codec/codec_enc.c, codec_dec.c, value.c, arena.c): round
# trips, encoder validation, limits, arena OOM, and a malformed-input corpus.
if(TARGET rxp_codec)
  rxp_add_test(test_codec
    SOURCES ${RXP_TEST_DIR}/test_codec.c
    LINK rxp_codec rxp_util LABELS unit codec TIMEOUT 60)
  rxp_add_test(test_codec_arena
    SOURCES ${RXP_TEST_DIR}/test_codec_arena.c
    LINK rxp_codec rxp_util LABELS unit codec TIMEOUT 30)
  rxp_add_test(test_codec_malformed
    SOURCES ${RXP_TEST_DIR}/test_codec_malformed.c
    LINK rxp_codec rxp_util LABELS unit codec TIMEOUT 60)
endif()
