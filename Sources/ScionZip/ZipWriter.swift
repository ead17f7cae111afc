import CZlib
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a zip archive (a Keras 3 `.keras` model, a NumPy `.npz`) to a path, entry by entry.
///
/// Entries are streamed to disk as they are added, so a large weights file can be copied into a
/// stored entry without holding it in memory. Each local header is written first with placeholder
/// checksum and sizes and patched in place once the entry's data is written, the same layout
/// Python's `zipfile` produces on a seekable file, so Keras reads the result. ZIP64 records are
/// added only where a size, offset or count needs them.
///
/// The writer writes straight to `path`; callers wanting an atomic replace write to a temporary
/// path and rename after `finish()`. After any error the writer refuses further work, and the
/// partial file is left for the caller to remove.
package final class ZipWriter {
    /// 1980-01-01 00:00, the earliest DOS timestamp; the default makes output byte-for-byte
    /// reproducible for identical input.
    package static let defaultModificationDate = Date(timeIntervalSince1970: 315_532_800)

    package let path: String

    private enum State { case open, writingEntry, finished, failed }

    /// What the central directory needs to know about an entry once its data is written.
    private struct Record {
        var name: String
        var nameBytes: [UInt8]
        var method: UInt16
        var flags: UInt16
        var crc32: UInt32 = 0
        var compressedSize: UInt64 = 0
        var uncompressedSize: UInt64 = 0
        var localHeaderOffset: UInt64
        var localHeaderUsesZip64: Bool
    }

    private var descriptor: Int32
    private var state = State.open
    private var pending: [UInt8] = []
    /// Logical end of the archive so far, including bytes still in `pending`.
    private var position: UInt64 = 0
    private var records: [Record] = []
    private var names: Set<String> = []
    private let dosTime: UInt16
    private let dosDate: UInt16
    /// Values at or above this go into ZIP64 records. 0xFFFFFFFF in real use; tests lower it to
    /// exercise ZIP64 without writing 4 GiB.
    private let zip64Threshold: UInt64

    private static let bufferCapacity = 1 << 20

    /// Creates (or truncates) the file at `path`.
    package convenience init(path: String, modificationDate: Date = ZipWriter.defaultModificationDate) throws {
        try self.init(path: path, modificationDate: modificationDate, zip64Threshold: UInt64(ZipFormat.zip64Marker32))
    }

    init(path: String, modificationDate: Date, zip64Threshold: UInt64) throws {
        self.path = path
        self.zip64Threshold = zip64Threshold
        (dosTime, dosDate) = ZipFormat.dosTimestamp(modificationDate)
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw ZipError(.writeFailed, file: path, "cannot create the file: \(zipSystemErrorDescription(errno))")
        }
        pending.reserveCapacity(Self.bufferCapacity)
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Adds an entry holding `bytes`, deflated when `compress` is true (Keras stores entries
    /// uncompressed, so it passes false).
    package func addEntry(name: String, bytes: some ContiguousBytes, compress: Bool) throws {
        try bytes.withUnsafeBytes { buffer in
            try addEntry(name: name, size: UInt64(buffer.count), compress: compress) { try $0.write(buffer) }
        }
    }

    /// Adds an entry of exactly `size` bytes that `body` writes in chunks through the stream it is
    /// given, so the entry never has to be in memory at once. The size is needed up front to decide
    /// whether the local header needs a ZIP64 field; writing more or fewer bytes is an error.
    package func addEntry(name: String, size: UInt64, compress: Bool, body: (ZipEntryStream) throws -> Void) throws {
        try checkCanAdd(name)
        state = .writingEntry
        do {
            let nameBytes = Array(name.utf8)
            let margin = size / 64 + 65536 // deflate can slightly enlarge incompressible data
            let largest = compress ? size.addingReportingOverflow(margin) : (partialValue: size, overflow: false)
            var record = Record(
                name: name, nameBytes: nameBytes,
                method: compress ? ZipFormat.deflateMethod : ZipFormat.storedMethod,
                flags: nameBytes.allSatisfy { $0 < 0x80 } ? 0 : ZipFormat.utf8NameFlag,
                localHeaderOffset: position,
                localHeaderUsesZip64: largest.overflow || largest.partialValue >= zip64Threshold)
            try emitBytes(localHeader(for: record))

            let deflater = compress ? try ZipDeflater(path: path, entryName: name) : nil
            let stream = ZipEntryStream(writer: self, entryName: name, declaredSize: size, deflater: deflater)
            // A stream kept by the body must not write into the archive after this call.
            defer { stream.abandon() }
            try body(stream)
            try stream.close()

            record.crc32 = stream.checksum.value
            record.uncompressedSize = stream.uncompressedCount
            record.compressedSize = stream.compressedCount
            guard record.localHeaderUsesZip64
                || (record.compressedSize < zip64Threshold && record.uncompressedSize < zip64Threshold)
            else {
                throw ZipError(.writeFailed, file: path, entry: name, "deflated data grew past the 4 GiB a header without ZIP64 can describe")
            }
            try flushPending()
            try localHeader(for: record).withUnsafeBytes { try writeFully($0, at: record.localHeaderOffset) }
            records.append(record)
            names.insert(name)
            state = .open
        } catch {
            state = .failed
            throw error
        }
    }

    /// Adds an entry with the contents of the file at `sourcePath`, read in 1 MiB chunks.
    package func addEntry(name: String, contentsOfFile sourcePath: String, compress: Bool) throws {
        try checkCanAdd(name)
        func failure(_ reason: String) -> ZipError {
            ZipError(.writeFailed, file: path, entry: name, reason)
        }
        let source = open(sourcePath, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw failure("cannot open \(sourcePath): \(zipSystemErrorDescription(errno))") }
        defer { close(source) }
        var status = stat()
        guard fstat(source, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw failure("\(sourcePath) is not a regular file")
        }
        let size = UInt64(max(status.st_size, 0))
        var chunk = [UInt8](repeating: 0, count: Self.bufferCapacity)
        try addEntry(name: name, size: size, compress: compress) { stream in
            var remaining = size
            while true {
                let count = chunk.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count >= 0 else { throw failure("cannot read \(sourcePath): \(zipSystemErrorDescription(errno))") }
                if count == 0 { break }
                guard UInt64(count) <= remaining else { throw failure("\(sourcePath) grew while it was being copied") }
                remaining -= UInt64(count)
                try chunk.withUnsafeBytes { try stream.write(UnsafeRawBufferPointer(rebasing: $0[0 ..< count])) }
            }
            guard remaining == 0 else { throw failure("\(sourcePath) shrank while it was being copied") }
        }
    }

    /// Writes the central directory and end records and closes the file. The archive is complete
    /// only after this returns.
    package func finish() throws {
        guard state == .open else { throw stateError(entry: "") }
        do {
            let directoryOffset = position
            for record in records { try emitBytes(centralHeader(for: record)) }
            let directorySize = position - directoryOffset
            let count = UInt64(records.count)
            let countNeedsZip64 = count >= min(UInt64(ZipFormat.zip64Marker16), zip64Threshold)
            let sizeNeedsZip64 = directorySize >= zip64Threshold
            let offsetNeedsZip64 = directoryOffset >= zip64Threshold
            if countNeedsZip64 || sizeNeedsZip64 || offsetNeedsZip64 {
                try emitBytes(ZipFormat.zip64EndRecords(
                    entryCount: count, directorySize: directorySize, directoryOffset: directoryOffset, recordOffset: position))
            }
            var end = ZipByteBuilder()
            end.append32(ZipFormat.endOfCentralDirectorySignature)
            end.append16(0)
            end.append16(0)
            let count16 = countNeedsZip64 ? ZipFormat.zip64Marker16 : UInt16(count)
            end.append16(count16)
            end.append16(count16)
            end.append32(sizeNeedsZip64 ? ZipFormat.zip64Marker32 : UInt32(directorySize))
            end.append32(offsetNeedsZip64 ? ZipFormat.zip64Marker32 : UInt32(directoryOffset))
            end.append16(0)
            try emitBytes(end.bytes)
            try flushPending()
            guard fsync(descriptor) == 0 else { throw ioError("cannot flush the file to disk") }
            let closing = descriptor
            descriptor = -1
            guard close(closing) == 0 else { throw ioError("cannot close the file") }
            state = .finished
        } catch {
            state = .failed
            throw error
        }
    }

    // MARK: - Output

    /// Appends bytes at the end of the archive, buffering small writes.
    fileprivate func emit(_ bytes: UnsafeRawBufferPointer) throws {
        if pending.count + bytes.count > Self.bufferCapacity { try flushPending() }
        if bytes.count >= Self.bufferCapacity {
            try writeFully(bytes, at: nil)
        } else {
            pending.append(contentsOf: bytes)
        }
        position += UInt64(bytes.count)
    }

    private func emitBytes(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try emit($0) }
    }

    private func flushPending() throws {
        guard !pending.isEmpty else { return }
        try pending.withUnsafeBytes { try writeFully($0, at: nil) }
        pending.removeAll(keepingCapacity: true)
    }

    /// Writes all of `bytes`, at the current file position or, with `offset`, at that offset
    /// (to patch a local header), retrying partial writes and interrupted calls.
    private func writeFully(_ bytes: UnsafeRawBufferPointer, at offset: UInt64?) throws {
        guard let base = bytes.baseAddress else { return }
        var written = 0
        while written < bytes.count {
            let pointer = base + written
            let count = bytes.count - written
            let result = if let offset {
                pwrite(descriptor, pointer, count, off_t(offset) + off_t(written))
            } else {
                write(descriptor, pointer, count)
            }
            if result < 0, errno == EINTR { continue }
            guard result > 0 else { throw ioError("cannot write the file") }
            written += result
        }
    }

    private func ioError(_ reason: String) -> ZipError {
        ZipError(.writeFailed, file: path, "\(reason): \(zipSystemErrorDescription(errno))")
    }

    private func stateError(entry: String) -> ZipError {
        let reason = switch state {
        case .open: "the writer is ready"
        case .writingEntry: "cannot add an entry while another entry is being written"
        case .finished: "the archive is already finished"
        case .failed: "an earlier error left the archive incomplete"
        }
        return ZipError(.writeFailed, file: path, entry: entry, reason)
    }

    private func checkCanAdd(_ name: String) throws {
        guard state == .open else { throw stateError(entry: name) }
        func invalid(_ reason: String) -> ZipError { ZipError(.writeFailed, file: path, entry: name, reason) }
        guard !name.isEmpty else { throw invalid("entry name is empty") }
        guard name.utf8.count <= Int(UInt16.max) else { throw invalid("entry name is longer than 65535 bytes") }
        guard !name.utf8.contains(0) else { throw invalid("entry name contains a NUL character") }
        guard !names.contains(name) else { throw invalid("the archive already has an entry with this name") }
    }

    // MARK: - Headers

    private func localHeader(for record: Record) -> [UInt8] {
        var header = ZipByteBuilder()
        header.append32(ZipFormat.localFileHeaderSignature)
        header.append16(record.localHeaderUsesZip64 ? ZipFormat.versionZip64 : ZipFormat.versionDefault)
        header.append16(record.flags)
        header.append16(record.method)
        header.append16(dosTime)
        header.append16(dosDate)
        header.append32(record.crc32)
        if record.localHeaderUsesZip64 {
            header.append32(ZipFormat.zip64Marker32)
            header.append32(ZipFormat.zip64Marker32)
        } else {
            header.append32(UInt32(truncatingIfNeeded: record.compressedSize))
            header.append32(UInt32(truncatingIfNeeded: record.uncompressedSize))
        }
        header.append16(UInt16(record.nameBytes.count))
        header.append16(record.localHeaderUsesZip64 ? 20 : 0)
        header.bytes += record.nameBytes
        if record.localHeaderUsesZip64 {
            header.append16(ZipFormat.zip64ExtraFieldIdentifier)
            header.append16(16)
            header.append64(record.uncompressedSize)
            header.append64(record.compressedSize)
        }
        return header.bytes
    }

    private func centralHeader(for record: Record) -> [UInt8] {
        var zip64 = ZipByteBuilder()
        func field32(_ value: UInt64) -> UInt32 {
            guard value >= zip64Threshold else { return UInt32(value) }
            zip64.append64(value)
            return ZipFormat.zip64Marker32
        }
        // The ZIP64 extra field lists the marked fields in this fixed order.
        let uncompressed = field32(record.uncompressedSize)
        let compressed = field32(record.compressedSize)
        let offset = field32(record.localHeaderOffset)
        var extra = ZipByteBuilder()
        if !zip64.bytes.isEmpty {
            extra.append16(ZipFormat.zip64ExtraFieldIdentifier)
            extra.append16(UInt16(zip64.bytes.count))
            extra.bytes += zip64.bytes
        }
        let version = extra.bytes.isEmpty && !record.localHeaderUsesZip64 ? ZipFormat.versionDefault : ZipFormat.versionZip64

        var header = ZipByteBuilder()
        header.append32(ZipFormat.centralDirectoryHeaderSignature)
        header.append16(3 << 8 | version) // made by: Unix, so the permissions below are honoured
        header.append16(version)
        header.append16(record.flags)
        header.append16(record.method)
        header.append16(dosTime)
        header.append16(dosDate)
        header.append32(record.crc32)
        header.append32(compressed)
        header.append32(uncompressed)
        header.append16(UInt16(record.nameBytes.count))
        header.append16(UInt16(extra.bytes.count))
        header.append16(0) // comment length
        header.append16(0) // disk number
        header.append16(0) // internal attributes
        header.append32(0o100644 << 16) // external attributes: regular file, rw-r--r--
        header.append32(offset)
        header.bytes += record.nameBytes
        header.bytes += extra.bytes
        return header.bytes
    }
}

/// The sink `ZipWriter.addEntry(name:size:compress:body:)` hands to its body: each `write`
/// appends a chunk to the entry, updating the CRC-32 and compressing on the way.
package final class ZipEntryStream {
    private let writer: ZipWriter
    private let entryName: String
    private let declaredSize: UInt64
    private let deflater: ZipDeflater?
    private var isClosed = false
    /// Set when a write failed: the entry's bytes on disk are then incomplete, even if the body
    /// swallowed the error, so the entry must not be completed.
    private var hasFailed = false
    fileprivate private(set) var checksum = ZipChecksum()
    fileprivate private(set) var uncompressedCount: UInt64 = 0
    fileprivate private(set) var compressedCount: UInt64 = 0

    fileprivate init(writer: ZipWriter, entryName: String, declaredSize: UInt64, deflater: ZipDeflater?) {
        self.writer = writer
        self.entryName = entryName
        self.declaredSize = declaredSize
        self.deflater = deflater
    }

    /// Appends `bytes` to the entry. Only valid inside the `addEntry` body.
    package func write(_ bytes: some ContiguousBytes) throws {
        try bytes.withUnsafeBytes { try write(buffer: $0) }
    }

    private func write(buffer: UnsafeRawBufferPointer) throws {
        guard !isClosed else { throw failure("cannot write to an entry after its addEntry call returned") }
        guard UInt64(buffer.count) <= declaredSize - uncompressedCount else {
            throw failure("more bytes written than the \(declaredSize) declared")
        }
        checksum.update(buffer)
        uncompressedCount += UInt64(buffer.count)
        do {
            try output(buffer, finishing: false)
        } catch {
            hasFailed = true
            throw error
        }
    }

    fileprivate func abandon() {
        isClosed = true
    }

    fileprivate func close() throws {
        guard !isClosed else { return }
        isClosed = true
        guard !hasFailed else { throw failure("an earlier write to this entry failed") }
        guard uncompressedCount == declaredSize else {
            throw failure("\(uncompressedCount) bytes written but \(declaredSize) declared")
        }
        try output(UnsafeRawBufferPointer(start: nil, count: 0), finishing: true)
    }

    private func output(_ buffer: UnsafeRawBufferPointer, finishing: Bool) throws {
        if let deflater {
            try deflater.process(buffer, finishing: finishing) { compressed in
                compressedCount += UInt64(compressed.count)
                try writer.emit(compressed)
            }
        } else if !buffer.isEmpty {
            compressedCount += UInt64(buffer.count)
            try writer.emit(buffer)
        }
    }

    private func failure(_ reason: String) -> ZipError {
        ZipError(.writeFailed, file: writer.path, entry: entryName, reason)
    }
}
