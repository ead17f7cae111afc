import CHDF5

/// The element type of a dataset, as this module reads and writes it.
///
/// Numbers are always exchanged little-endian, whatever the byte order in the file.
package enum HDF5ElementType: Hashable, Sendable, CustomStringConvertible {
    /// IEEE 754 half precision (numpy `float16`), exchanged as raw 2-byte halves.
    case float16
    case float32, float64
    case int8, int16, int32, int64
    case uint8, uint16, uint32, uint64
    /// numpy `bool` as h5py stores it: an 8-bit enum `FALSE = 0, TRUE = 1`; one byte per
    /// element, 0 or 1.
    case bool
    /// Fixed- or variable-length strings (not readable as bytes).
    case string
    /// Anything else (compound, bitfield, non-IEEE floats, ...), described in words.
    case other(String)

    /// Bytes per element in memory, or nil for `string` and `other`.
    package var byteWidth: Int? {
        switch self {
        case .int8, .uint8, .bool: return 1
        case .float16, .int16, .uint16: return 2
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        case .string, .other: return nil
        }
    }

    package var description: String {
        switch self {
        case .float16: return "float16"
        case .float32: return "float32"
        case .float64: return "float64"
        case .int8: return "int8"
        case .int16: return "int16"
        case .int32: return "int32"
        case .int64: return "int64"
        case .uint8: return "uint8"
        case .uint16: return "uint16"
        case .uint32: return "uint32"
        case .uint64: return "uint64"
        case .bool: return "bool"
        case .string: return "string"
        case .other(let text): return text
        }
    }
}

extension HDF5ElementType {
    /// A new libhdf5 datatype for this element type, little-endian; the caller closes it
    /// with `H5Tclose`. Used both as the file type when writing and as the memory type when
    /// reading. Returns a negative id on failure or for `string` / `other`.
    ///
    /// Wraps `H5Tcopy`; for `float16` also `H5Tset_fields`, `H5Tset_size`, `H5Tset_ebias`
    /// (HDF5 before 1.14.4 has no predefined half type), for `bool` `H5Tenum_create` and
    /// `H5Tenum_insert`.
    func makeTypeID() -> hid_t {
        switch self {
        case .float16: return Self.makeHalfType()
        case .float32: return H5Tcopy(scion_H5T_IEEE_F32LE())
        case .float64: return H5Tcopy(scion_H5T_IEEE_F64LE())
        case .int8: return H5Tcopy(scion_H5T_STD_I8LE())
        case .int16: return H5Tcopy(scion_H5T_STD_I16LE())
        case .int32: return H5Tcopy(scion_H5T_STD_I32LE())
        case .int64: return H5Tcopy(scion_H5T_STD_I64LE())
        case .uint8: return H5Tcopy(scion_H5T_STD_U8LE())
        case .uint16: return H5Tcopy(scion_H5T_STD_U16LE())
        case .uint32: return H5Tcopy(scion_H5T_STD_U32LE())
        case .uint64: return H5Tcopy(scion_H5T_STD_U64LE())
        case .bool: return Self.makeBoolType()
        case .string, .other: return scion_H5I_INVALID_HID()
        }
    }

    /// IEEE half, little-endian, built the way h5py builds it from a copy of `F32LE`.
    private static func makeHalfType() -> hid_t {
        let predefined = scion_H5T_IEEE_F16LE()
        if predefined >= 0 { return H5Tcopy(predefined) }
        let type = H5Tcopy(scion_H5T_IEEE_F32LE())
        guard type >= 0 else { return type }
        guard H5Tset_fields(type, 15, 10, 5, 0, 10) >= 0,
              H5Tset_size(type, 2) >= 0,
              H5Tset_ebias(type, 15) >= 0
        else {
            Temporary.closeType(type)
            return scion_H5I_INVALID_HID()
        }
        return type
    }

    /// h5py's numpy-bool type: enum over a signed byte with FALSE = 0, TRUE = 1.
    private static func makeBoolType() -> hid_t {
        let type = H5Tenum_create(scion_H5T_STD_I8LE())
        guard type >= 0 else { return type }
        var no: Int8 = 0
        var yes: Int8 = 1
        guard H5Tenum_insert(type, "FALSE", &no) >= 0, H5Tenum_insert(type, "TRUE", &yes) >= 0 else {
            Temporary.closeType(type)
            return scion_H5I_INVALID_HID()
        }
        return type
    }

    /// Classifies a file datatype. Never throws: what it cannot read becomes `.other`.
    ///
    /// Wraps `H5Tget_class`, `H5Tget_size`, `H5Tget_sign`, `H5Tget_fields`,
    /// `H5Tget_ebias`, `H5Tget_super`, `H5Tget_nmembers` and `H5Tenum_nameof`.
    init(fileType type: hid_t) {
        let size = H5Tget_size(type)
        switch H5Tget_class(type) {
        case H5T_FLOAT:
            switch size {
            case 2: self = Self.isIEEEHalf(type) ? .float16 : .other("2-byte float that is not IEEE half")
            case 4: self = .float32
            case 8: self = .float64
            default: self = .other("\(size)-byte float")
            }
        case H5T_INTEGER:
            let signed = H5Tget_sign(type) == H5T_SGN_2
            switch size {
            case 1: self = signed ? .int8 : .uint8
            case 2: self = signed ? .int16 : .uint16
            case 4: self = signed ? .int32 : .uint32
            case 8: self = signed ? .int64 : .uint64
            default: self = .other("\(size)-byte integer")
            }
        case H5T_ENUM:
            self = Self.isNumpyBool(type) ? .bool : .other("enum")
        case H5T_STRING: self = .string
        case H5T_COMPOUND: self = .other("compound")
        case H5T_ARRAY: self = .other("array")
        case H5T_VLEN: self = .other("variable-length sequence")
        case H5T_BITFIELD: self = .other("bitfield")
        case H5T_OPAQUE: self = .other("opaque")
        case H5T_REFERENCE: self = .other("reference")
        case H5T_TIME: self = .other("time")
        default: self = .other("unknown datatype")
        }
    }

    private static func isIEEEHalf(_ type: hid_t) -> Bool {
        var signPos = 0, expPos = 0, expSize = 0, mantPos = 0, mantSize = 0
        guard H5Tget_fields(type, &signPos, &expPos, &expSize, &mantPos, &mantSize) >= 0 else { return false }
        return (signPos, expPos, expSize, mantPos, mantSize) == (15, 10, 5, 0, 10) && H5Tget_ebias(type) == 15
    }

    private static func isNumpyBool(_ type: hid_t) -> Bool {
        guard H5Tget_size(type) == 1, H5Tget_nmembers(type) == 2 else { return false }
        let base = H5Tget_super(type)
        guard base >= 0 else { return false }
        defer { Temporary.closeType(base) }
        guard H5Tget_class(base) == H5T_INTEGER else { return false }
        func name(of value: UInt8) -> String? {
            var value = value
            var buffer = [CChar](repeating: 0, count: 16)
            let status = buffer.withUnsafeMutableBufferPointer { H5Tenum_nameof(type, &value, $0.baseAddress, 16) }
            guard status >= 0 else { return nil }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return name(of: 0) == "FALSE" && name(of: 1) == "TRUE"
    }
}
