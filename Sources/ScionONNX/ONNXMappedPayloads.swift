#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CProtobufC
import ONNXProto
import ScionIR

/// The weights of an ONNX file read where they lie. protobuf-c copies every `bytes` field as it
/// parses, so a model's initializers were in memory twice while it was read (the C tree's copy, then
/// the Swift one) and written into fresh pages both times: for ResNet50 200 MB, most of reading its
/// ONNX file. Before parsing, the main graph's large `raw_data` payloads are taken out of a copy of
/// the model's bytes, each replaced by a marker (a field ONNX does not define, which protobuf-c keeps
/// as unknown) holding its index here; the tensors become lazy ranges of the mapped file
/// (`ONNXMappedTensorSource`), read once, by whoever needs them, straight from the page cache.
///
/// Anything unexpected in the wire format (a group, a length past its message's end) gives up the
/// stripping, and the model is parsed whole as before, so errors stay the parser's own.
final class ONNXMappedPayloads: @unchecked Sendable {
    /// The file's mapping, unmapped when the last tensor reading it is gone.
    let base: UnsafeRawPointer
    let byteCount: Int
    /// Where each payload taken out lies in the file, by marker index.
    private(set) var ranges: [Range<Int>] = []
    /// Written into every marker: a marker only counts if it carries this process's own value, so a
    /// file cannot name ranges of itself by writing the marker's field.
    let nonce = UInt64.random(in: 1...UInt64.max)

    /// The field number of the marker, unused by ONNX's TensorProto. (protobuf-c 1.4 keeps unknown
    /// fields of numbers like this one; one near 2^29 it dropped.)
    static let markerField: UInt32 = 2047
    /// Payloads smaller than this stay in place: the copy costs less than the bookkeeping.
    static let smallestStripped = 4096

    init(mapping: UnsafeRawPointer, byteCount: Int) {
        base = mapping
        self.byteCount = byteCount
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), byteCount) }

    /// Drops the whole pages inside `range` from this process's memory once a reader has its own
    /// copy (the executor's float32 weights): `MappedPages.release`.
    func release(_ range: Range<Int>) {
        MappedPages.release(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    /// The model's bytes with the main graph's large `raw_data` payloads replaced by markers; nil when
    /// there are none to take out or the bytes are not plain protobuf (the caller parses them whole).
    func stripped() -> [UInt8]? {
        let bytes = UnsafeRawBufferPointer(start: base, count: byteCount)
        var output: [UInt8] = []
        output.reserveCapacity(min(byteCount, 16 << 20))
        // ModelProto: field 7 is the graph; in GraphProto field 5 an initializer; in TensorProto field 9 raw_data.
        let done = rewrite(bytes, 0..<byteCount, into: &output) { field, payload, output in
            guard field == 7 else { return false }
            return self.rewriteNested(bytes, payload, into: &output, field: 7) { field, payload, output in
                guard field == 5 else { return false }
                return self.rewriteNested(bytes, payload, into: &output, field: 5) { field, payload, output in
                    guard field == 9, payload.count >= Self.smallestStripped else { return false }
                    self.appendMarker(for: payload, into: &output)
                    return true
                }
            }
        }
        return done && !ranges.isEmpty ? output : nil
    }

    /// The range a tensor's marker names, if it carries one of this process's markers.
    func range(of message: ProtobufCMessage) -> Range<Int>? {
        guard message.n_unknown_fields > 0, let fields = message.unknown_fields else { return nil }
        // protobuf-c keeps an unknown length-delimited field with its length: here one byte, 16.
        for field in UnsafeBufferPointer(start: fields, count: Int(message.n_unknown_fields))
        where field.tag == Self.markerField && field.len == 17 && field.data?[0] == 16 {
            let raw = UnsafeRawBufferPointer(start: field.data + 1, count: 16)
            let nonce = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            let index = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            guard nonce == self.nonce, index < UInt64(ranges.count) else { return nil }
            return ranges[Int(index)]
        }
        return nil
    }

    private func appendMarker(for payload: Range<Int>, into output: inout [UInt8]) {
        Self.appendVarint(UInt64(Self.markerField) << 3 | 2, to: &output)
        Self.appendVarint(16, to: &output)
        withUnsafeBytes(of: nonce.littleEndian) { output += $0 }
        withUnsafeBytes(of: UInt64(ranges.count).littleEndian) { output += $0 }
        ranges.append(payload)
    }

    /// Rewrites the length-delimited field `field` whose payload is `payload`: its fields through
    /// `replace` into a buffer, then the key, the new length and that buffer into `output`.
    private func rewriteNested(_ bytes: UnsafeRawBufferPointer, _ payload: Range<Int>, into output: inout [UInt8], field: UInt32,
                               _ replace: (UInt32, Range<Int>, inout [UInt8]) -> Bool) -> Bool {
        var inner: [UInt8] = []
        guard rewrite(bytes, payload, into: &inner, replace) else { return false }
        Self.appendVarint(UInt64(field) << 3 | 2, to: &output)
        Self.appendVarint(UInt64(inner.count), to: &output)
        output += inner
        return true
    }

    /// Copies the fields of the message in `range` to `output`, each length-delimited one offered to
    /// `replace` first (which appends its own bytes and returns true, or leaves it to be copied).
    /// False on anything but well-formed fields of wire types 0, 1, 2 and 5.
    private func rewrite(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, into output: inout [UInt8],
                         _ replace: (UInt32, Range<Int>, inout [UInt8]) -> Bool) -> Bool {
        var offset = range.lowerBound
        while offset < range.upperBound {
            let start = offset
            guard let key = Self.varint(bytes, &offset, end: range.upperBound), key >> 3 <= UInt64(UInt32.max) else { return false }
            let field = UInt32(key >> 3)
            switch key & 7 {
            case 0: guard Self.varint(bytes, &offset, end: range.upperBound) != nil else { return false }
            case 1: offset += 8
            case 5: offset += 4
            case 2:
                guard let length = Self.varint(bytes, &offset, end: range.upperBound), length <= UInt64(range.upperBound - offset) else {
                    return false
                }
                let payload = offset..<(offset + Int(length))
                offset = payload.upperBound
                if replace(field, payload, &output) { continue }
            default: return false
            }
            guard offset <= range.upperBound else { return false }
            output += UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
        }
        return true
    }

    private static func varint(_ bytes: UnsafeRawBufferPointer, _ offset: inout Int, end: Int) -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard offset < end else { return nil }
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7f) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }

    private static func appendVarint(_ value: UInt64, to output: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            output.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        output.append(UInt8(value))
    }
}

/// A tensor's `raw_data` in the mapped ONNX file: read from there when needed, never copied before.
final class ONNXMappedTensorSource: MappedTensorSource, @unchecked Sendable {
    let payloads: ONNXMappedPayloads
    let range: Range<Int>
    let location: String
    var byteCount: Int { range.count }

    init(payloads: ONNXMappedPayloads, range: Range<Int>, location: String) {
        self.payloads = payloads
        self.range = range
        self.location = location
    }

    func readBytes() throws -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: payloads.base + range.lowerBound, count: range.count))
    }

    func readBytes(into buffer: UnsafeMutableRawBufferPointer) throws {
        guard buffer.count == range.count else {
            throw ONNXError(.invalidTensor, file: location, "holds \(range.count) bytes, \(buffer.count) were asked for")
        }
        buffer.copyMemory(from: UnsafeRawBufferPointer(start: payloads.base + range.lowerBound, count: range.count))
        payloads.release(range)
    }

    func withMappedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        defer { payloads.release(range) }
        return try body(UnsafeRawBufferPointer(start: payloads.base + range.lowerBound, count: range.count))
    }
}
