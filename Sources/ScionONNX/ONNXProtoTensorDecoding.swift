#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CProtobufC
import ONNXProto
import ScionIR

/// The size a tensor's values take, from its dims and ONNX data type. Reader and writer both check
/// byte counts against it before trusting them: a file's dims are only numbers until they agree
/// with the bytes actually present.
struct ONNXTensorLayout {
    let elementCount: Int

    /// Multiplies the dims, refusing negative ones and products that overflow.
    init(dimensions: [Int64], file: String, subject: String) throws {
        var count = 1
        for dimension in dimensions {
            guard dimension >= 0 else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "has a negative dimension in \(dimensions)")
            }
            guard dimension <= Int64(Int.max) else {
                throw ONNXError(.invalidTensor, file: file, subject: subject, "dimensions \(dimensions) are too large")
            }
            let product = count.multipliedReportingOverflow(by: Int(dimension))
            guard !product.overflow else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "dimensions \(dimensions) hold more elements than can be counted")
            }
            count = product.partialValue
        }
        elementCount = count
    }

    /// Bits one element of the ONNX data type takes in `raw_data`; nil for STRING, UNDEFINED and
    /// types Scion cannot size (FLOAT6 variants, future ones).
    static func bitsPerElement(_ dataType: Int32) -> Int? {
        switch dataType {
        case 2, 3, 9, 17, 18, 19, 20, 24: 8  // uint8, int8, bool, the float8 variants
        case 4, 5, 10, 16: 16  // uint16, int16, float16, bfloat16
        case 1, 6, 12: 32  // float, int32, uint32
        case 7, 11, 13, 14: 64  // int64, double, uint64, complex64
        case 15: 128  // complex128
        case 21, 22, 23: 4  // uint4, int4, float4e2m1, two to a byte
        case 25, 26: 2  // uint2, int2, four to a byte
        default: nil
        }
    }

    static func describe(_ dataType: Int32) -> String {
        ONNXDataType(rawValue: dataType).map { "\($0)" } ?? "data type \(dataType)"
    }

    /// The bytes `raw_data` must hold: elements times element size, packed types rounded up.
    func byteCount(dataType: Int32, file: String, subject: String) throws -> Int {
        guard let bits = Self.bitsPerElement(dataType) else {
            if dataType == 0 {
                throw ONNXError(.invalidTensor, file: file, subject: subject, "has no data type")
            }
            throw ONNXError(.unsupported, file: file, subject: subject,
                            "\(Self.describe(dataType)) is not supported for tensor data")
        }
        let totalBits = elementCount.multipliedReportingOverflow(by: bits)
        guard !totalBits.overflow, totalBits.partialValue <= Int.max - 7 else {
            throw ONNXError(.invalidTensor, file: file, subject: subject,
                            "holds more bytes than can be counted (\(elementCount) elements)")
        }
        return (totalBits.partialValue + 7) / 8
    }
}

extension ONNXProtoDecoder {
    /// - Parameter context: names the tensor in errors when it has no name of its own.
    func tensor(_ proto: UnsafeMutablePointer<Onnx__TensorProto>, context: String) throws -> ONNXTensor {
        let message = proto.pointee
        let name = text(message.name)
        let subject = name.isEmpty ? context : "tensor '\(name)'"
        let dimensions = scalars(message.dims, message.n_dims)
        let dataType = message.has_data_type != 0 ? message.data_type : 0
        guard message.segment == nil else {
            throw ONNXError(.unsupported, file: file, subject: subject,
                            "segmented tensors (TensorProto.segment) are not supported")
        }
        let layout = try ONNXTensorLayout(dimensions: dimensions, file: file, subject: subject)
        let data = try tensorData(message, dataType: dataType, layout: layout, subject: subject)
        if message.has_raw_data != 0 {
            // Freed now rather than with the rest of the C tree, so that while a large model is
            // converted its C copy of the weights shrinks as the Swift copy grows, instead of both
            // existing in full. protobuf-c's free_unpacked skips a NULL buffer. (Its allocator is
            // plain malloc, see ONNXProtoCodec.budgetedAllocator.)
            free(proto.pointee.raw_data.data)
            proto.pointee.raw_data = ProtobufCBinaryData(len: 0, data: nil)
            proto.pointee.has_raw_data = 0
        }
        return ONNXTensor(name: name, dimensions: dimensions, dataType: dataType, data: data)
    }

    private func tensorData(_ message: Onnx__TensorProto, dataType: Int32, layout: ONNXTensorLayout,
                            subject: String) throws -> ONNXTensorData {
        var fields: [String] = []
        // A payload left in the mapped file (`ONNXMappedPayloads`) is this tensor's raw_data.
        let mapped = payloads?.range(of: message.base)
        if message.has_raw_data != 0 || mapped != nil { fields.append("raw_data") }
        if message.n_float_data > 0 { fields.append("float_data") }
        if message.n_int32_data > 0 { fields.append("int32_data") }
        if message.n_string_data > 0 { fields.append("string_data") }
        if message.n_int64_data > 0 { fields.append("int64_data") }
        if message.n_double_data > 0 { fields.append("double_data") }
        if message.n_uint64_data > 0 { fields.append("uint64_data") }
        guard fields.count <= 1 else {
            throw ONNXError(.invalidTensor, file: file, subject: subject,
                            "holds values in more than one field (\(fields.joined(separator: ", ")))")
        }

        let location = message.has_data_location != 0 ? message.data_location.rawValue : 0
        switch location {
        case 0: break
        case 1:
            guard fields.isEmpty else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "is stored externally but also holds \(fields[0])")
            }
            return try externalData(message, dataType: dataType, layout: layout, subject: subject)
        default:
            throw ONNXError(.invalidTensor, file: file, subject: subject, "has unknown data_location \(location)")
        }

        if dataType == ONNXDataType.string.rawValue {
            guard fields.isEmpty || fields == ["string_data"] else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "is a string tensor but holds \(fields[0]) instead of string_data")
            }
            guard message.n_string_data == layout.elementCount else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "holds \(message.n_string_data) strings but its dims need \(layout.elementCount)")
            }
            return .strings(scalars(message.string_data, message.n_string_data).map(binary))
        }

        let byteCount = try layout.byteCount(dataType: dataType, file: file, subject: subject)
        let typeName = ONNXTensorLayout.describe(dataType)
        /// Converts a typed field of `count` values to little-endian raw bytes, `width` bytes per
        /// value, once the type is one the field may hold and the count agrees with the dims.
        func converted(_ field: String, count: Int, width: Int, allowed: Bool,
                       value: (Int) -> UInt64) throws -> ONNXTensorData {
            guard allowed else {
                throw ONNXError(.invalidTensor, file: file, subject: subject, "\(field) cannot hold \(typeName) values")
            }
            let needed = count.multipliedReportingOverflow(by: width)
            guard !needed.overflow, needed.partialValue == byteCount else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "holds \(count) values in \(field) but dims \(scalars(message.dims, message.n_dims)) "
                                    + "of \(typeName) need \(byteCount / width)")
            }
            return .raw(littleEndianBytes(count: count, width: width, value: value))
        }

        switch fields.first {
        case nil:
            guard byteCount == 0 else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "declares \(layout.elementCount) elements but holds no values")
            }
            return .raw([])
        case "raw_data":
            let length = mapped?.count ?? message.raw_data.len
            guard length == byteCount else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "has \(length) bytes of raw_data but dims "
                                    + "\(scalars(message.dims, message.n_dims)) of \(typeName) need \(byteCount)")
            }
            if let mapped, let payloads {
                let source = ONNXMappedTensorSource(payloads: payloads, range: mapped, location: "\(file): \(subject)")
                return .storage(TensorStorage(source: source))
            }
            return .raw(binary(message.raw_data))
        case "float_data":
            let values = message.float_data
            return try converted("float_data", count: message.n_float_data, width: 4,
                                 allowed: dataType == 1 || dataType == 14) {
                UInt64(values?[$0].bitPattern ?? 0)
            }
        case "int32_data":
            // One element per int32 for the types narrower than 32 bits, one packed byte per int32 for
            // the sub-byte ones.
            let bits = ONNXTensorLayout.bitsPerElement(dataType) ?? 0
            let values = message.int32_data
            return try converted("int32_data", count: message.n_int32_data, width: max(bits / 8, 1),
                                 allowed: bits <= 32 && ![1, 12].contains(dataType)) {
                UInt64(UInt32(bitPattern: values?[$0] ?? 0))
            }
        case "int64_data":
            let values = message.int64_data
            return try converted("int64_data", count: message.n_int64_data, width: 8, allowed: dataType == 7) {
                UInt64(bitPattern: values?[$0] ?? 0)
            }
        case "double_data":
            let values = message.double_data
            return try converted("double_data", count: message.n_double_data, width: 8,
                                 allowed: dataType == 11 || dataType == 15) {
                values?[$0].bitPattern ?? 0
            }
        case "uint64_data":
            let values = message.uint64_data
            return try converted("uint64_data", count: message.n_uint64_data, width: dataType == 12 ? 4 : 8,
                                 allowed: dataType == 12 || dataType == 13) {
                values?[$0] ?? 0
            }
        default:
            throw ONNXError(.invalidTensor, file: file, subject: subject,
                            "\(typeName) tensor holds its values in \(fields[0])")
        }
    }

    /// `data_location = EXTERNAL`: where the bytes are, from the `external_data` entries, checked
    /// for well-formed numbers. Reading and confining the path is the external-data reader's job.
    private func externalData(_ message: Onnx__TensorProto, dataType: Int32, layout: ONNXTensorLayout,
                              subject: String) throws -> ONNXTensorData {
        guard dataType != ONNXDataType.string.rawValue else {
            throw ONNXError(.invalidTensor, file: file, subject: subject, "string tensors cannot be stored externally")
        }
        let byteCount = try layout.byteCount(dataType: dataType, file: file, subject: subject)
        var location: String?
        var offset = 0
        var length: Int?
        for entry in messages(message.external_data, message.n_external_data) {
            let value = text(entry.pointee.value)
            switch text(entry.pointee.key) {
            case "location": location = value
            case "offset": offset = try externalNumber(value, key: "offset", subject: subject)
            case "length": length = try externalNumber(value, key: "length", subject: subject)
            default: break  // "checksum" and keys from later versions
            }
        }
        guard let location, !location.isEmpty else {
            throw ONNXError(.invalidTensor, file: file, subject: subject, "is stored externally but names no location")
        }
        if let length {
            guard length == byteCount else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "external data length \(length) disagrees with the \(byteCount) bytes its dims need")
            }
        }
        guard !offset.addingReportingOverflow(length ?? byteCount).overflow else {
            throw ONNXError(.invalidTensor, file: file, subject: subject, "external data offset \(offset) is too large")
        }
        return .external(location: location, offset: offset, length: length)
    }

    /// A decimal count: digits only, so no sign, space or hexadecimal sneaks through.
    private func externalNumber(_ text: String, key: String, subject: String) throws -> Int {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let number = Int(text) else {
            throw ONNXError(.invalidTensor, file: file, subject: subject,
                            "external data \(key) '\(text)' is not a non-negative integer")
        }
        return number
    }
}

/// `count` values as little-endian bytes, `width` bytes each (the low bytes of each value).
func littleEndianBytes(count: Int, width: Int, value: (Int) -> UInt64) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count * width) { buffer, initialized in
        for index in 0..<count {
            let word = value(index)
            for byte in 0..<width {
                buffer[index * width + byte] = UInt8(truncatingIfNeeded: word >> UInt64(byte * 8))
            }
        }
        initialized = count * width
    }
}
