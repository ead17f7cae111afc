import Foundation

/// NumPy's `.npy` format, version 1 to 3: a magic string, a header dict (`descr`, `fortran_order`,
/// `shape`) and the raw data. Reads float32, float64, int32 and int64 (little endian, C order) into
/// float32; writes float32. Sizes declared by the header are checked against the bytes present
/// before anything is allocated.
public enum NumpyFile {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// The array in the `.npy` file at `path`, as float32.
    public static func read(_ path: String) throws -> RuntimeTensor {
        // A regular file is decoded from its pages in the page cache: no copy of it in fresh memory.
        if let mapped = MappedFile(path: path) {
            return try decode(UnsafeRawBufferPointer(start: mapped.base, count: mapped.byteCount), file: path)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RuntimeError(path, "cannot be read (missing or not a file)")
        }
        // Decoded where the file's bytes lie: no [UInt8] copy of them first.
        return try data.withUnsafeBytes { try decode($0, file: path) }
    }

    /// The array in `bytes`, the contents of a `.npy` file; `file` names it in errors.
    public static func decode(_ bytes: [UInt8], file: String) throws -> RuntimeTensor {
        try bytes.withUnsafeBytes { try decode($0, file: file) }
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws -> RuntimeTensor {
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw RuntimeError(file, "is not a NumPy .npy file (no \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw RuntimeError(file, "is truncated in its header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw RuntimeError(file, ".npy version \(major) is not supported (1 to 3 are)")
        }
        guard headerStart + headerLength <= bytes.count else { throw RuntimeError(file, "is truncated in its header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        let descr = try field("descr", in: header, file: file)
        guard try field("fortran_order", in: header, file: file).hasPrefix("False") else {
            throw RuntimeError(file, "is in Fortran order; save it with numpy.ascontiguousarray first")
        }
        let shape = try parseShape(try field("shape", in: header, file: file), file: file)
        let elementCount = try shape.reduce(1) { total, dimension in
            let (product, overflow) = total.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw RuntimeError(file, "declares shape \(shape), too large") }
            return product
        }
        let type = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
        let size: Int
        switch type {
        case "<f4", "|f4": size = 4
        case "<f8": size = 8
        case "<i4": size = 4
        case "<i8": size = 8
        case "|b1", "|u1", "|i1": size = 1  // bool (a Keras attention mask), uint8 (image bytes), int8
        default:
            throw RuntimeError(file, "holds \(type) values; float32, float64, int32, int64 (little endian), bool, uint8 and int8 are supported")
        }
        let start = headerStart + headerLength
        let (needed, overflow) = elementCount.multipliedReportingOverflow(by: size)
        guard !overflow, bytes.count - start == needed else {
            throw RuntimeError(file, "declares shape \(shape) of \(type) (\(elementCount) values) but holds \(bytes.count - start) data bytes")
        }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start...])
        let values: [Float]
        switch type {
        case "<f8": values = (0..<elementCount).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
        case "<i4": values = (0..<elementCount).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        case "<i8": values = (0..<elementCount).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        case "|b1": values = (0..<elementCount).map { raw[$0] != 0 ? 1 : 0 }
        case "|u1": values = (0..<elementCount).map { Float(raw[$0]) }
        case "|i1": values = (0..<elementCount).map { Float(Int8(bitPattern: raw[$0])) }
        default:
            // float32 little endian: the bytes as they are, one copy.
            values = [Float](unsafeUninitializedCapacity: elementCount) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
                initialized = elementCount
            }
        }
        return RuntimeTensor(shape: shape, data: values)
    }

    /// The text after `'key':` up to the next top-level comma (a tuple for `shape`).
    static func field(_ key: String, in header: String, file: String) throws -> String {
        guard let range = header.range(of: "'\(key)':") else {
            throw RuntimeError(file, "has no '\(key)' in its .npy header")
        }
        var value = header[range.upperBound...].drop { $0 == " " }
        if value.first == "(" {
            guard let close = value.firstIndex(of: ")") else { throw RuntimeError(file, "has a malformed '\(key)'") }
            value = value[...close]
        } else if let comma = value.firstIndex(where: { $0 == "," || $0 == "}" }) {
            value = value[..<comma]
        }
        return String(value)
    }

    static func parseShape(_ text: String, file: String) throws -> [Int] {
        let inner = text.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        if inner.isEmpty { return [] }
        return try inner.split(separator: ",").compactMap { part -> Int? in
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { return nil }
            guard let value = Int(trimmed), value >= 0 else { throw RuntimeError(file, "has a malformed shape \(text)") }
            return value
        }
    }

    /// The `.npy` bytes of a float32 tensor (version 1, header padded to 64 bytes as NumPy does).
    public static func encode(_ tensor: RuntimeTensor) -> [UInt8] {
        let shape = tensor.shape.count == 1 ? "(\(tensor.shape[0]),)" : "(\(tensor.shape.map(String.init).joined(separator: ", ")))"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var bytes = magic + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8)
        tensor.data.withUnsafeBytes { bytes += $0 }
        return bytes
    }
}
