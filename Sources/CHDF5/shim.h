#ifndef SCION_CHDF5_SHIM_H
#define SCION_CHDF5_SHIM_H
// HDF5 exposes many constants as macros or as globals that Swift 6 rejects as not
// concurrency-safe; these inline functions hand them to Swift as plain values.
#include <hdf5.h>
#include <hdf5_hl.h>

static inline hid_t scion_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t scion_H5S_ALL(void) { return H5S_ALL; }
static inline hid_t scion_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t scion_H5P_FILE_CREATE(void) { return H5P_FILE_CREATE; }
static inline hid_t scion_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t scion_H5P_LINK_CREATE(void) { return H5P_LINK_CREATE; }
static inline hid_t scion_H5E_DEFAULT(void) { return H5E_DEFAULT; }
static inline unsigned scion_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned scion_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned scion_H5F_ACC_EXCL(void) { return H5F_ACC_EXCL; }
static inline hid_t scion_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t scion_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t scion_H5T_NATIVE_INT8(void) { return H5T_NATIVE_INT8; }
static inline hid_t scion_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t scion_H5T_NATIVE_INT16(void) { return H5T_NATIVE_INT16; }
static inline hid_t scion_H5T_NATIVE_INT32(void) { return H5T_NATIVE_INT32; }
static inline hid_t scion_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t scion_H5T_NATIVE_UINT16(void) { return H5T_NATIVE_UINT16; }
static inline hid_t scion_H5T_NATIVE_UINT32(void) { return H5T_NATIVE_UINT32; }
static inline hid_t scion_H5T_NATIVE_UINT64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t scion_H5T_NATIVE_HBOOL(void) { return H5T_NATIVE_HBOOL; }
// H5T_IEEE_F16LE only exists from HDF5 1.14.4 on; older libraries (Debian's 1.10.8) have no
// predefined half type, so this returns H5I_INVALID_HID there and Swift builds one itself.
#ifdef H5T_IEEE_F16LE
static inline hid_t scion_H5T_IEEE_F16LE(void) { return H5T_IEEE_F16LE; }
#else
static inline hid_t scion_H5T_IEEE_F16LE(void) { return H5I_INVALID_HID; }
#endif
static inline hid_t scion_H5T_IEEE_F32LE(void) { return H5T_IEEE_F32LE; }
static inline hid_t scion_H5T_IEEE_F64LE(void) { return H5T_IEEE_F64LE; }
static inline hid_t scion_H5T_STD_I32LE(void) { return H5T_STD_I32LE; }
static inline hid_t scion_H5T_STD_I64LE(void) { return H5T_STD_I64LE; }
static inline hid_t scion_H5T_C_S1(void) { return H5T_C_S1; }
static inline size_t scion_H5T_VARIABLE(void) { return H5T_VARIABLE; }
static inline unsigned scion_H5LT_FILE_IMAGE_DONT_COPY(void) { return H5LT_FILE_IMAGE_DONT_COPY; }
static inline unsigned scion_H5LT_FILE_IMAGE_DONT_RELEASE(void) { return H5LT_FILE_IMAGE_DONT_RELEASE; }

static inline hid_t scion_H5T_STD_I8LE(void) { return H5T_STD_I8LE; }
static inline hid_t scion_H5T_STD_I16LE(void) { return H5T_STD_I16LE; }
static inline hid_t scion_H5T_STD_U8LE(void) { return H5T_STD_U8LE; }
static inline hid_t scion_H5T_STD_U16LE(void) { return H5T_STD_U16LE; }
static inline hid_t scion_H5T_STD_U32LE(void) { return H5T_STD_U32LE; }
static inline hid_t scion_H5T_STD_U64LE(void) { return H5T_STD_U64LE; }
static inline hid_t scion_H5P_LINK_ACCESS(void) { return H5P_LINK_ACCESS; }
static inline hid_t scion_H5P_ATTRIBUTE_CREATE(void) { return H5P_ATTRIBUTE_CREATE; }
static inline hid_t scion_H5I_INVALID_HID(void) { return H5I_INVALID_HID; }
static inline unsigned scion_H5O_INFO_BASIC(void) { return H5O_INFO_BASIC; }
static inline haddr_t scion_HADDR_UNDEF(void) { return HADDR_UNDEF; }

#endif
