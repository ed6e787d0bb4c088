# Codec fuzzing (tests/fuzz/fuzz_codec.c).
#  fuzz_codec_replay: runs the fuzz target over the checked-in corpus (and
#    any crash files added to it); a ctest, built with any compiler.
#  fuzz_codec: the libFuzzer binary, built only with clang. The codec
#    sources are compiled into it directly so that they carry coverage.
if(NOT TARGET rxp_codec)
  return()
endif()

rxp_add_test(fuzz_codec_replay
  SOURCES ${RXP_TEST_DIR}/fuzz_codec.c
  LINK rxp_codec rxp_util LABELS unit codec fuzz TIMEOUT 60
  ARGS ${RXP_TEST_DIR}/corpus/codec)
target_compile_definitions(fuzz_codec_replay PRIVATE RXP_FUZZ_REPLAY)

# libFuzzer runs with ASan; it cannot be combined with a TSan build.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang" AND NOT RXP_SANITIZE STREQUAL "thread")
  include(CheckCSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS -fsanitize=fuzzer)
  set(CMAKE_REQUIRED_LINK_OPTIONS -fsanitize=fuzzer)
  check_c_source_compiles("
    #include <stddef.h>
    #include <stdint.h>
    int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
    int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }"
    RXP_HAVE_LIBFUZZER)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_LINK_OPTIONS)
  if(RXP_HAVE_LIBFUZZER)
    add_executable(fuzz_codec ${RXP_TEST_DIR}/fuzz_codec.c
      ${PROJECT_SOURCE_DIR}/codec/codec_enc.c
      ${PROJECT_SOURCE_DIR}/codec/codec_dec.c ${PROJECT_SOURCE_DIR}/codec/value.c
      ${PROJECT_SOURCE_DIR}/codec/arena.c ${PROJECT_SOURCE_DIR}/util/util.c)
    target_include_directories(fuzz_codec PRIVATE ${PROJECT_SOURCE_DIR}/include
      ${PROJECT_SOURCE_DIR}/util ${PROJECT_SOURCE_DIR}/codec)
    target_compile_definitions(fuzz_codec PRIVATE _GNU_SOURCE)
    set(fz -fsanitize=fuzzer)
    if(NOT RXP_SANITIZE STREQUAL "address")
      list(APPEND fz -fsanitize=address,undefined -fno-sanitize-recover=undefined)
    endif()
    target_compile_options(fuzz_codec PRIVATE ${fz})
    target_link_options(fuzz_codec PRIVATE ${fz})
  endif()
endif()
