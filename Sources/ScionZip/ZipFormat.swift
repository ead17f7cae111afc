import CZlib
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One file inside a zip archive, as described by the archive's central directory.
///
/// Every offset and size here has been checked against the file by `ZipArchive` before the
/// value was handed out, so code holding a `ZipEntry` from an archive can rely on it.
package struct ZipEntry: Equatable, Sendable {
    /// The entry's path inside the archive, decoded as UTF-8 (e.g. `model.weights.h5`).
    package var name: String
    /// 0 = stored (no compression), 8 = deflate. Other methods are listed but refused when read.
    package var compressionMethod: UInt16
    /// Bytes the entry occupies in the archive.
    package var compressedSize: UInt64
    /// Bytes the entry claims to expand to; only trusted after the data has been checked against it.
    package var uncompressedSize: UInt64
    /// CRC-32 of the uncompressed bytes, as recorded in the central directory.
    package var crc32: UInt32
    /// Where the entry's local file header starts.
    package var localHeaderOffset: UInt64
    /// Where the entry's (possibly compressed) bytes start, just after the local header.
    package var dataOffset: UInt64

    package init(
        name: String, compressionMethod: UInt16, compressedSize: UInt64, uncompressedSize: UInt64,
        crc32: UInt32, localHeaderOffset: UInt64, dataOffset: UInt64
    ) {
        self.name = name
        self.compressionMethod = compressionMethod
        self.compressedSize = compressedSize
        self.uncompressedSize = uncompressedSize
        self.crc32 = crc32
        self.localHeaderOffset = localHeaderOffset
        self.dataOffset = dataOffset
    }

    /// Directories are listed as entries whose name ends in a slash.
    package var isDirectory: Bool { name.hasSuffix("/") }
}

/// Constants from the PKWARE APPNOTE, shared by the reader and the writer so both agree on layout.
enum ZipFormat {
    static let localFileHeaderSignature: UInt32 = 0x0403_4b50
    static let centralDirectoryHeaderSignature: UInt32 = 0x0201_4b50
    static let endOfCentralDirectorySignature: UInt32 = 0x0605_4b50
    static let zip64EndOfCentralDirectorySignature: UInt32 = 0x0606_4b50
    static let zip64EndOfCentralDirectoryLocatorSignature: UInt32 = 0x0706_4b50

    static let localFileHeaderLength = 30
    static let centralDirectoryHeaderLength = 46
    static let endOfCentralDirectoryLength = 22
    static let zip64EndOfCentralDirectoryLength = 56
    static let zip64EndOfCentralDirectoryLocatorLength = 20
    /// The end record is 22 bytes followed by a comment of at most 65535 bytes, so it must
    /// start within this many bytes of the end of the file.
    static let endOfCentralDirectorySearchLength = 22 + 65535

    static let storedMethod: UInt16 = 0
    static let deflateMethod: UInt16 = 8

    /// General purpose flag bits.
    static let encryptedFlag: UInt16 = 1 << 0
    static let strongEncryptionFlag: UInt16 = 1 << 6
    static let utf8NameFlag: UInt16 = 1 << 11
    static let maskedHeaderFlag: UInt16 = 1 << 13

    static let zip64ExtraFieldIdentifier: UInt16 = 0x0001
    /// 32-bit and 16-bit fields hold these values when the real value lives in a ZIP64 record.
    static let zip64Marker32: UInt32 = 0xFFFF_FFFF
    static let zip64Marker16: UInt16 = 0xFFFF

    /// "Version needed to extract": 2.0 for deflate, 4.5 when ZIP64 records are present.
    static let versionDefault: UInt16 = 20
    static let versionZip64: UInt16 = 45

    /// DOS date and time fields, in UTC so the same date gives the same bytes on every machine.
    static func dosTimestamp(_ date: Date) -> (time: UInt16, date: UInt16) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0) ?? calendar.timeZone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        guard let year = parts.year, year >= 1980, year <= 2107 else { return (0, 1 << 5 | 1) }
        let time = (parts.hour ?? 0) << 11 | (parts.minute ?? 0) << 5 | (parts.second ?? 0) / 2
        let day = (year - 1980) << 9 | (parts.month ?? 1) << 5 | (parts.day ?? 1)
        return (UInt16(truncatingIfNeeded: time), UInt16(truncatingIfNeeded: day))
    }

    /// The ZIP64 end of central directory record, written at `recordOffset`, and its locator.
    static func zip64EndRecords(entryCount: UInt64, directorySize: UInt64, directoryOffset: UInt64, recordOffset: UInt64) -> [UInt8] {
        var records = ZipByteBuilder()
        records.append32(zip64EndOfCentralDirectorySignature)
        records.append64(UInt64(zip64EndOfCentralDirectoryLength - 12)) // size of the rest of the record
        records.append16(3 << 8 | versionZip64) // made by: Unix
        records.append16(versionZip64)
        records.append32(0) // this disk
        records.append32(0) // disk holding the central directory
        records.append64(entryCount) // entries on this disk
        records.append64(entryCount) // entries in total
        records.append64(directorySize)
        records.append64(directoryOffset)
        records.append32(zip64EndOfCentralDirectoryLocatorSignature)
        records.append32(0) // disk holding the ZIP64 end record
        records.append64(recordOffset)
        records.append32(1) // total number of disks
        return records.bytes
    }

    /// Deflate cannot expand data by more than 1032:1 (a 258-byte match coded in 2 bits), so an
    /// entry declaring more than this is lying, and we can refuse it before allocating anything.
    static func maximumInflatedSize(compressedSize: UInt64) -> UInt64 {
        let (product, overflow) = compressedSize.multipliedReportingOverflow(by: 1032)
        if overflow { return UInt64.max }
        let (sum, sumOverflow) = product.addingReportingOverflow(4096)
        return sumOverflow ? UInt64.max : sum
    }
}

/// The four central directory fields a ZIP64 extra field can widen.
struct Zip64Fields {
    var uncompressedSize: UInt64
    var compressedSize: UInt64
    var localHeaderOffset: UInt64
    var diskStart: UInt32

    /// Replaces the fields holding the ZIP64 marker with the 64-bit values of the ZIP64 extra
    /// field, which lists only the marked fields, in this fixed order. Returns what is wrong with
    /// `extra`, or nil if it is well formed.
    mutating func apply(extra: ZipByteRegion) -> String? {
        var cursor = 0
        var seenZip64 = false
        while cursor + 4 <= extra.count {
            let identifier = extra.uint16(at: cursor)
            let length = Int(extra.uint16(at: cursor + 2))
            guard let field = extra.subregion(offset: cursor + 4, count: length) else {
                return "extra field 0x\(String(identifier, radix: 16)) runs past the end of the header"
            }
            cursor += 4 + length
            guard identifier == ZipFormat.zip64ExtraFieldIdentifier else { continue }
            guard !seenZip64 else { return "entry has more than one zip64 extra field" }
            seenZip64 = true
            let marker = UInt64(ZipFormat.zip64Marker32)
            let needed = [uncompressedSize, compressedSize, localHeaderOffset].filter { $0 == marker }.count * 8
                + (diskStart == UInt32(ZipFormat.zip64Marker16) ? 4 : 0)
            guard needed <= field.count else { return "zip64 extra field is too short" }
            var fieldCursor = 0
            func next64() -> UInt64 {
                defer { fieldCursor += 8 }
                return field.uint64(at: fieldCursor)
            }
            if uncompressedSize == marker { uncompressedSize = next64() }
            if compressedSize == marker { compressedSize = next64() }
            if localHeaderOffset == marker { localHeaderOffset = next64() }
            if diskStart == UInt32(ZipFormat.zip64Marker16) { diskStart = field.uint32(at: fieldCursor) }
        }
        return nil
    }
}

/// A bounds-checked little-endian view of part of the archive.
///
/// Callers obtain a region with `subregion`, which fails if the range is not entirely inside,
/// and then read fixed fields from it. The field readers return 0 rather than trapping when asked
/// for bytes outside the region, so a mistake in the parser cannot turn into a crash.
struct ZipByteRegion {
    let bytes: UnsafeRawBufferPointer

    var count: Int { bytes.count }

    func uint16(at offset: Int) -> UInt16 {
        guard offset >= 0, offset <= bytes.count - 2 else { return 0 }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    func uint32(at offset: Int) -> UInt32 {
        guard offset >= 0, offset <= bytes.count - 4 else { return 0 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    func uint64(at offset: Int) -> UInt64 {
        guard offset >= 0, offset <= bytes.count - 8 else { return 0 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The bytes `offset ..< offset + count`, or nil if any of them lies outside this region.
    /// Takes 64-bit values so that sizes read from the file can be checked without overflowing.
    func subregion(offset: UInt64, count length: UInt64) -> ZipByteRegion? {
        let available = UInt64(bytes.count)
        guard offset <= available, length <= available - offset else { return nil }
        let start = Int(offset)
        return ZipByteRegion(bytes: UnsafeRawBufferPointer(rebasing: bytes[start ..< start + Int(length)]))
    }

    func subregion(offset: Int, count length: Int) -> ZipByteRegion? {
        guard offset >= 0, length >= 0 else { return nil }
        return subregion(offset: UInt64(offset), count: UInt64(length))
    }
}

/// Incremental CRC-32 (the zip polynomial) computed by zlib, so large entries can be checked
/// chunk by chunk without holding them in memory.
struct ZipChecksum {
    private(set) var value: UInt32 = 0

    /// zlib takes a 32-bit length; feed it at most 1 GiB at a time.
    private static let maximumChunk = 1 << 30

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let length = min(bytes.count - offset, Self.maximumChunk)
            let chunk = base.advanced(by: offset).assumingMemoryBound(to: Bytef.self)
            let updated = CZlib.crc32(uLong(value), chunk, uInt(length))
            value = UInt32(truncatingIfNeeded: updated)
            offset += length
        }
    }
}

/// The error text of the C library's last failure, for messages about system calls.
func zipSystemErrorDescription(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error \(code)" }
    return String(cString: text).lowercased()
}

// MARK: - zlib streams and header serialisation

/// Raw-inflates `input` into a buffer of exactly `declaredSize` bytes. A stream that would
/// produce even one byte more is rejected, so the declared size bounds memory use.
func zipInflate(
    _ input: UnsafeRawBufferPointer, declaredSize: Int, failure: (String) -> ZipError
) throws -> [UInt8] {
    let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    stream.initialize(to: z_stream())
    // One spare byte to find out whether the stream wants to go past the declared size.
    let probe = UnsafeMutablePointer<Bytef>.allocate(capacity: 1)
    defer {
        stream.deinitialize(count: 1)
        stream.deallocate()
        probe.deallocate()
    }
    // Negative window bits: raw deflate, no zlib header, which is what zip stores.
    guard scion_inflateInit2(stream, -15) == Z_OK else {
        throw failure("cannot initialise zlib inflate")
    }
    defer { inflateEnd(stream) }

    let chunkLimit = 1 << 30
    return try [UInt8](unsafeUninitializedCapacity: declaredSize) { buffer, initializedCount in
        var inputOffset = 0
        while true {
            if stream.pointee.avail_in == 0, inputOffset < input.count, let inputBase = input.baseAddress {
                let length = min(input.count - inputOffset, chunkLimit)
                stream.pointee.next_in = UnsafeMutablePointer(mutating: inputBase.advanced(by: inputOffset)
                    .assumingMemoryBound(to: Bytef.self))
                stream.pointee.avail_in = uInt(length)
                inputOffset += length
            }
            let outputFull = initializedCount == declaredSize
            if outputFull {
                stream.pointee.next_out = probe
                stream.pointee.avail_out = 1
            } else {
                guard let outputBase = buffer.baseAddress else { throw failure("cannot allocate the output buffer") }
                stream.pointee.next_out = outputBase + initializedCount
                stream.pointee.avail_out = uInt(min(declaredSize - initializedCount, chunkLimit))
            }
            let inputBefore = stream.pointee.avail_in
            let outputBefore = stream.pointee.avail_out
            let status = CZlib.inflate(stream, Z_NO_FLUSH)
            let written = Int(outputBefore - stream.pointee.avail_out)
            if outputFull, written > 0 {
                throw failure("deflate stream expands beyond the declared \(declaredSize) bytes")
            }
            initializedCount += written
            switch status {
            case Z_STREAM_END:
                guard initializedCount == declaredSize else {
                    throw failure("deflate stream produced \(initializedCount) bytes but the entry declares \(declaredSize)")
                }
                return
            case Z_OK, Z_BUF_ERROR:
                let progressed = written > 0 || stream.pointee.avail_in != inputBefore
                if !progressed {
                    throw failure(stream.pointee.avail_in == 0 && inputOffset >= input.count
                        ? "deflate stream is truncated: its \(input.count) bytes end before the end-of-stream marker"
                        : "deflate stream makes no progress")
                }
            default:
                let detail = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw failure("deflate stream is corrupt: \(detail)")
            }
        }
    }
}

/// A raw deflate stream (no zlib header, as zip requires) with its own output buffer.
final class ZipDeflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let output: UnsafeMutableRawBufferPointer
    private let path: String
    private let entryName: String

    init(path: String, entryName: String) throws {
        self.path = path
        self.entryName = entryName
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        output = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        guard scion_deflateInit2(stream, Z_DEFAULT_COMPRESSION, -15) == Z_OK else {
            throw ZipError(.writeFailed, file: path, entry: entryName, "cannot initialise zlib deflate")
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        output.deallocate()
    }

    /// Compresses `input` (and, when `finishing`, flushes the end of the stream), passing each
    /// filled output buffer to `emit`.
    func process(_ input: UnsafeRawBufferPointer, finishing: Bool, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        let chunkLimit = 1 << 30
        var inputOffset = 0
        while true {
            if stream.pointee.avail_in == 0, inputOffset < input.count, let base = input.baseAddress {
                let length = min(input.count - inputOffset, chunkLimit)
                stream.pointee.next_in = UnsafeMutablePointer(mutating: (base + inputOffset).assumingMemoryBound(to: Bytef.self))
                stream.pointee.avail_in = uInt(length)
                inputOffset += length
            }
            stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(output.count)
            let allInputGiven = inputOffset >= input.count
            let inputBefore = stream.pointee.avail_in
            let status = deflate(stream, finishing && allInputGiven ? Z_FINISH : Z_NO_FLUSH)
            let produced = output.count - Int(stream.pointee.avail_out)
            if produced > 0 { try emit(UnsafeRawBufferPointer(rebasing: output[0 ..< produced])) }
            if status == Z_STREAM_END { return }
            let stalled = status == Z_BUF_ERROR && produced == 0 && stream.pointee.avail_in == inputBefore && finishing
            guard status == Z_OK || status == Z_BUF_ERROR, !stalled else {
                throw ZipError(.writeFailed, file: path, entry: entryName, "zlib deflate failed with status \(status)")
            }
            if !finishing, allInputGiven, stream.pointee.avail_in == 0, stream.pointee.avail_out != 0 { return }
        }
    }
}

/// Little-endian serialisation of header fields.
struct ZipByteBuilder {
    var bytes: [UInt8] = []

    mutating func append16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func append32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func append64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
}
