# Locating the native runtime's dependencies. Each optional part ends with a STATUS line
# saying ON or OFF and why, so a configure log tells what was built.

# --- OpenCV: its CMake package when installed (JetPack, libopencv-dev), else the per-module
# Debian packages (libopencv-{core,imgproc,imgcodecs,videoio,highgui}-dev) found by hand.
set(TASKVEC_OPENCV_MODULES core imgproc imgcodecs videoio highgui)
find_package(OpenCV QUIET COMPONENTS ${TASKVEC_OPENCV_MODULES})
if(OpenCV_FOUND)
  set(TASKVEC_OPENCV_LIBS ${OpenCV_LIBS})
  set(TASKVEC_OPENCV_INCLUDE ${OpenCV_INCLUDE_DIRS})
  message(STATUS "OpenCV ${OpenCV_VERSION} (CMake package)")
else()
  find_path(TASKVEC_OPENCV_INCLUDE opencv2/core.hpp PATH_SUFFIXES opencv4)
  set(TASKVEC_OPENCV_LIBS "")
  foreach(m ${TASKVEC_OPENCV_MODULES})
    find_library(TASKVEC_OPENCV_${m} NAMES opencv_${m})
    if(NOT TASKVEC_OPENCV_${m})
      message(FATAL_ERROR "OpenCV module ${m} not found: apt-get install libopencv-${m}-dev (or libopencv-dev)")
    endif()
    list(APPEND TASKVEC_OPENCV_LIBS ${TASKVEC_OPENCV_${m}})
  endforeach()
  if(NOT TASKVEC_OPENCV_INCLUDE)
    message(FATAL_ERROR "OpenCV headers not found: apt-get install libopencv-core-dev (or libopencv-dev)")
  endif()
  message(STATUS "OpenCV modules found by hand in ${TASKVEC_OPENCV_INCLUDE}")
endif()

# --- nlohmann/json (header only): the graph's sidecar and the --stats file.
find_package(nlohmann_json 3 QUIET)
if(NOT nlohmann_json_FOUND)
  find_path(TASKVEC_JSON_INCLUDE nlohmann/json.hpp)
  if(NOT TASKVEC_JSON_INCLUDE)
    message(FATAL_ERROR "nlohmann/json not found: apt-get install nlohmann-json3-dev")
  endif()
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${TASKVEC_JSON_INCLUDE})
endif()

# --- ONNX Runtime (CPU backend). Headers: ONNXRUNTIME_INCLUDE_DIR, the system's
# (libonnxruntime-dev) or runtime/native/get_deps.sh's copy in build/deps. Library: the
# system's, else the one inside the onnxruntime wheel of TASKVEC_PYTHON (the same library the
# Python runtime uses).
set(TASKVEC_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH "Python with the onnxruntime wheel (tests, library)")
set(TASKVEC_HAVE_ORT OFF)
if(TASKVEC_WITH_ONNXRUNTIME)
  find_path(ONNXRUNTIME_INCLUDE_DIR onnxruntime_cxx_api.h
            HINTS ${ONNXRUNTIME_ROOT}/include ${CMAKE_BINARY_DIR}/deps/usr/include/onnxruntime
                  ${CMAKE_SOURCE_DIR}/build/deps/usr/include/onnxruntime
            PATH_SUFFIXES onnxruntime onnxruntime/core/session)
  find_library(ONNXRUNTIME_LIBRARY NAMES onnxruntime HINTS ${ONNXRUNTIME_ROOT}/lib)
  if(NOT ONNXRUNTIME_LIBRARY AND EXISTS "${TASKVEC_PYTHON}")
    execute_process(COMMAND "${TASKVEC_PYTHON}" -c "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"
                    OUTPUT_VARIABLE _ort_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _ort_rc)
    if(_ort_rc EQUAL 0)
      file(GLOB _ort_libs "${_ort_dir}/capi/libonnxruntime.so.*")
      if(_ort_libs)
        # the wheel ships libonnxruntime.so.1.X.Y only; its SONAME is libonnxruntime.so.1, so link
        # through build/ort-lib/ where both names point at the wheel's file (and are on the RPATH)
        list(GET _ort_libs 0 _ort_lib)
        file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/ort-lib")
        file(CREATE_LINK "${_ort_lib}" "${CMAKE_BINARY_DIR}/ort-lib/libonnxruntime.so.1" SYMBOLIC)
        file(CREATE_LINK "${_ort_lib}" "${CMAKE_BINARY_DIR}/ort-lib/libonnxruntime.so" SYMBOLIC)
        set(ONNXRUNTIME_LIBRARY "${CMAKE_BINARY_DIR}/ort-lib/libonnxruntime.so" CACHE FILEPATH "libonnxruntime" FORCE)
        set(TASKVEC_ORT_FROM_WHEEL "${_ort_lib}")
      endif()
    endif()
  endif()
  if(ONNXRUNTIME_INCLUDE_DIR AND ONNXRUNTIME_LIBRARY)
    set(TASKVEC_HAVE_ORT ON)
    message(STATUS "ONNX Runtime backend: ON (headers ${ONNXRUNTIME_INCLUDE_DIR}, library ${ONNXRUNTIME_LIBRARY})")
  else()
    message(STATUS "ONNX Runtime backend: OFF (headers: ${ONNXRUNTIME_INCLUDE_DIR}; library: ${ONNXRUNTIME_LIBRARY}) "
                   "- run runtime/native/get_deps.sh, or pass -DONNXRUNTIME_ROOT=DIR")
  endif()
else()
  message(STATUS "ONNX Runtime backend: OFF (TASKVEC_WITH_ONNXRUNTIME=OFF)")
endif()

# --- TensorRT 10.x (JetPack: /usr/include/aarch64-linux-gnu; x86: TENSORRT_ROOT) + the CUDA runtime.
# The backend only deserializes engines, so it needs the runtime header (NvInferRuntime.h, shipped in every
# TensorRT SDK beside NvInfer.h), libnvinfer and CUDA::cudart. The version comes from NvInferVersion.h
# (cmake/trt_version.cmake); older than 10 is left out with that reason.
include(${CMAKE_CURRENT_LIST_DIR}/trt_version.cmake)
set(TASKVEC_HAVE_TRT OFF)
if(TASKVEC_WITH_TENSORRT)
  find_path(TENSORRT_INCLUDE_DIR NvInferRuntime.h HINTS ${TENSORRT_ROOT}/include
            PATHS /usr/include/aarch64-linux-gnu /usr/include/x86_64-linux-gnu /usr/local/tensorrt/include)
  find_library(TENSORRT_LIBRARY nvinfer HINTS ${TENSORRT_ROOT}/lib
               PATHS /usr/lib/aarch64-linux-gnu /usr/lib/x86_64-linux-gnu /usr/local/tensorrt/lib)
  find_package(CUDAToolkit QUIET)
  set(TASKVEC_TRT_VERSION "")
  if(TENSORRT_INCLUDE_DIR AND EXISTS "${TENSORRT_INCLUDE_DIR}/NvInferVersion.h")
    taskvec_trt_version("${TENSORRT_INCLUDE_DIR}/NvInferVersion.h" TASKVEC_TRT_VERSION)
  endif()
  set(_why "")
  if(NOT TENSORRT_INCLUDE_DIR)
    string(APPEND _why " NvInferRuntime.h not found;")
  elseif(NOT TASKVEC_TRT_VERSION)
    string(APPEND _why " no TensorRT version in ${TENSORRT_INCLUDE_DIR}/NvInferVersion.h;")
  elseif(TASKVEC_TRT_VERSION VERSION_LESS 10)
    string(APPEND _why " TensorRT ${TASKVEC_TRT_VERSION} in ${TENSORRT_INCLUDE_DIR}, the backend needs 10 or newer;")
  endif()
  if(NOT TENSORRT_LIBRARY)
    string(APPEND _why " libnvinfer not found;")
  endif()
  if(NOT CUDAToolkit_FOUND)
    string(APPEND _why " CUDA toolkit (CUDA::cudart) not found;")
  endif()
  if(_why STREQUAL "")
    set(TASKVEC_HAVE_TRT ON)
    message(STATUS "TensorRT backend: ON (TensorRT ${TASKVEC_TRT_VERSION}; headers ${TENSORRT_INCLUDE_DIR}, "
                   "library ${TENSORRT_LIBRARY}, CUDA ${CUDAToolkit_VERSION})")
  else()
    string(STRIP "${_why}" _why)
    message(STATUS "TensorRT backend: OFF (${_why} pass -DTENSORRT_ROOT=DIR, or use JetPack)")
  endif()
else()
  message(STATUS "TensorRT backend: OFF (TASKVEC_WITH_TENSORRT=OFF)")
endif()

if(NOT TASKVEC_HAVE_ORT AND NOT TASKVEC_HAVE_TRT)
  message(WARNING "tvrun-native has no backend: it will build, but refuse every graph (see the lines above)")
endif()
