# FindZooKeeper: the multi-threaded ZooKeeper C client (libzookeeper_mt).
# Debian 12 ships no pkg-config file for it, hence this module.
#   ZooKeeper_FOUND, ZooKeeper_INCLUDE_DIRS, ZooKeeper_LIBRARIES, ZooKeeper_VERSION
#   imported target ZooKeeper::zookeeper_mt
find_path(ZooKeeper_INCLUDE_DIR zookeeper/zookeeper.h)
find_library(ZooKeeper_LIBRARY NAMES zookeeper_mt)
if(ZooKeeper_INCLUDE_DIR AND EXISTS "${ZooKeeper_INCLUDE_DIR}/zookeeper/zookeeper_version.h")
  file(STRINGS "${ZooKeeper_INCLUDE_DIR}/zookeeper/zookeeper_version.h" _zk_ver
       REGEX "#define ZOO_VERSION \"[0-9.]+\"")
  string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" ZooKeeper_VERSION "${_zk_ver}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(ZooKeeper
  REQUIRED_VARS ZooKeeper_LIBRARY ZooKeeper_INCLUDE_DIR
  VERSION_VAR ZooKeeper_VERSION)
if(ZooKeeper_FOUND AND NOT TARGET ZooKeeper::zookeeper_mt)
  set(ZooKeeper_INCLUDE_DIRS ${ZooKeeper_INCLUDE_DIR})
  set(ZooKeeper_LIBRARIES ${ZooKeeper_LIBRARY})
  add_library(ZooKeeper::zookeeper_mt UNKNOWN IMPORTED)
  set_target_properties(ZooKeeper::zookeeper_mt PROPERTIES
    IMPORTED_LOCATION "${ZooKeeper_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${ZooKeeper_INCLUDE_DIR}"
    # The multi-threaded client declares its synchronous API only with THREADED.
    INTERFACE_COMPILE_DEFINITIONS THREADED)
endif()
mark_as_advanced(ZooKeeper_INCLUDE_DIR ZooKeeper_LIBRARY)
