# ctest native_trt_version: cmake/trt_version.cmake on the two NvInferVersion.h layouts TensorRT has used
# (plain numbers; numbers behind TRT_*_ENTERPRISE names), on a TensorRT 8 header and on headers without a
# version. The fixtures are written here, three #define lines each, in the layout of NVIDIA's headers.
# Run: cmake -DWORK_DIR=<scratch dir> -P runtime/native/tests/trt_version_test.cmake
include(${CMAKE_CURRENT_LIST_DIR}/../cmake/trt_version.cmake)
if(NOT WORK_DIR)
  message(FATAL_ERROR "pass -DWORK_DIR=<scratch dir>")
endif()
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_failures 0)

function(expect name text expected)
  file(WRITE "${WORK_DIR}/${name}.h" "${text}")
  taskvec_trt_version("${WORK_DIR}/${name}.h" got)
  if(NOT got STREQUAL "${expected}")
    message(SEND_ERROR "${name}: expected '${expected}', got '${got}'")
    math(EXPR n "${_failures} + 1")
    set(_failures ${n} PARENT_SCOPE)
  else()
    message(STATUS "${name}: '${got}'")
  endif()
endfunction()

expect(plain_10_7
  "#define NV_TENSORRT_MAJOR 10 //!< TensorRT major version.\n#define NV_TENSORRT_MINOR 7  //!< minor\n#define NV_TENSORRT_PATCH 0  //!< patch\n#define NV_TENSORRT_BUILD 23\n"
  "10.7.0")
expect(enterprise_11_2_1
  "#define TRT_MAJOR_ENTERPRISE 11\n#define TRT_MINOR_ENTERPRISE 2\n#define TRT_PATCH_ENTERPRISE 1\n#define TRT_BUILD_ENTERPRISE 2\n#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< TensorRT major version.\n#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE //!< minor\n#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE //!< patch\n"
  "11.2.1")
expect(plain_8_6 "#define NV_TENSORRT_MAJOR 8\n#define NV_TENSORRT_MINOR 6\n#define NV_TENSORRT_PATCH 1\n" "8.6.1")
expect(no_patch "#define NV_TENSORRT_MAJOR 10\n#define NV_TENSORRT_MINOR 7\n" "")
expect(dangling_name "#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE\n#define NV_TENSORRT_MINOR 1\n#define NV_TENSORRT_PATCH 0\n" "")
expect(empty "// not a version header\n" "")

if(_failures GREATER 0)
  message(FATAL_ERROR "${_failures} trt_version case(s) failed")
endif()
