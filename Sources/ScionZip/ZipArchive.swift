import CZlib
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only zip archive (a Keras 3 `.keras` model, a NumPy `.npz`), memory-mapped so that a
/// large stored entry such as `model.weights.h5` can be used in place without copying it.
///
/// Everything read from the file is treated as hostile: the central directory is parsed and every
/// offset, size and count is checked against the file size before it is used, so damaged or
/// crafted archives produce a `ZipError` rather than a crash, a hang or a huge allocation.
///
/// The archive never changes after `init`, so it may be shared between threads. If another
/// process truncates the file while it is mapped, touching the lost pages raises SIGBUS; that is
/// inherent to memory mapping, and models and data are not expected to change while being read.
package final class ZipArchive: @unchecked Sendable {
    /// The path the archive was opened from, used in error messages.
    package let path: String
    /// Entries in central directory order.
    package let entries: [ZipEntry]
    /// Size of the file in bytes.
    package let fileSize: Int

    private let mapping: UnsafeRawBufferPointer
    private let entryIndexByName: [String: Int]

    /// Opens and maps the archive at `path` and reads its central directory.
    package init(path: String) throws {
        self.path = path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ZipError(.notAZipArchive, file: path, "cannot open for reading: \(zipSystemErrorDescription(errno))")
        }
        defer { close(descriptor) }

        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw ZipError(.notAZipArchive, file: path, "cannot read file status: \(zipSystemErrorDescription(errno))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw ZipError(.notAZipArchive, file: path, "not a regular file, so not a zip archive")
        }
        // mmap refuses a length of 0, and nothing shorter than an end record can be a zip archive.
        let size = Int(status.st_size)
        guard size > 0 else {
            throw ZipError(.notAZipArchive, file: path, "empty file, not a zip archive")
        }
        guard size >= ZipFormat.endOfCentralDirectoryLength else {
            throw ZipError(.notAZipArchive, file: path, "file of \(size) bytes is too short to be a zip archive")
        }

        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0),
              address != UnsafeMutableRawPointer(bitPattern: -1)
        else {
            throw ZipError(.damaged, file: path, "cannot map the file into memory: \(zipSystemErrorDescription(errno))")
        }
        let bytes = UnsafeRawBufferPointer(start: address, count: size)
        do {
            let parsed = try CentralDirectoryParser(file: ZipByteRegion(bytes: bytes), path: path).parse()
            entries = parsed.entries
            entryIndexByName = parsed.indexByName
        } catch {
            munmap(address, size)
            throw error
        }
        mapping = bytes
        fileSize = size
    }

    deinit {
        if let address = mapping.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: address), mapping.count)
        }
    }

    /// The entry called `name`, or nil if the archive has none.
    package func entry(named name: String) -> ZipEntry? {
        entryIndexByName[name].map { entries[$0] }
    }

    /// The uncompressed bytes of `entry`, checked against its declared size and CRC-32.
    ///
    /// `limit` is the most bytes the caller is willing to hold: an entry declaring more is refused
    /// before anything is allocated, and inflation stops as soon as the output would exceed the
    /// declared size, so a zip bomb costs at most `limit` bytes of memory.
    package func contents(of entry: ZipEntry, limit: Int) throws -> [UInt8] {
        let data = try validatedData(of: entry)
        let declared = entry.uncompressedSize
        guard declared <= UInt64(max(limit, 0)) else {
            throw ZipError(.damaged, file: path, entry: entry.name,
                           "entry declares \(declared) bytes uncompressed, more than the \(max(limit, 0))-byte limit")
        }
        let output: [UInt8]
        switch entry.compressionMethod {
        case ZipFormat.storedMethod:
            output = Array(data)
        case ZipFormat.deflateMethod:
            guard declared <= ZipFormat.maximumInflatedSize(compressedSize: entry.compressedSize) else {
                throw ZipError(.damaged, file: path, entry: entry.name,
                               "entry declares \(declared) bytes uncompressed, more than its \(entry.compressedSize) deflated bytes can expand to")
            }
            output = try zipInflate(data, declaredSize: Int(declared)) { reason in
                ZipError(.damaged, file: path, entry: entry.name, reason)
            }
        default:
            throw unsupportedMethodError(entry)
        }
        try output.withUnsafeBytes { try verifyChecksum(of: $0, entry: entry) }
        return output
    }

    /// The bytes of a stored (uncompressed) entry in place, without copying; nil for a compressed
    /// entry, whose bytes must be obtained with `contents(of:limit:)`.
    ///
    /// Lifetime: the buffer points into this archive's memory mapping. It is valid only while this
    /// `ZipArchive` is alive; keep a strong reference to the archive for as long as the buffer (or
    /// anything built on it without copying) is in use. The memory is read-only.
    ///
    /// With `verifyingChecksum` (the default) the CRC-32 is checked first, which reads the whole
    /// entry once; pass false only when the caller verifies the contents some other way.
    package func storedBytes(of entry: ZipEntry, verifyingChecksum: Bool = true) throws -> UnsafeRawBufferPointer? {
        let data = try validatedData(of: entry)
        switch entry.compressionMethod {
        case ZipFormat.storedMethod:
            if verifyingChecksum { try verifyChecksum(of: data, entry: entry) }
            return data
        case ZipFormat.deflateMethod:
            return nil
        default:
            throw unsupportedMethodError(entry)
        }
    }

    // MARK: - Private

    /// The entry's raw bytes inside the mapping. Only entries that came from this archive are
    /// accepted, because their offsets were validated when the central directory was parsed;
    /// a `ZipEntry` built or modified by the caller could point anywhere.
    private func validatedData(of entry: ZipEntry) throws -> UnsafeRawBufferPointer {
        guard let index = entryIndexByName[entry.name], entries[index] == entry else {
            throw ZipError(.damaged, file: path, entry: entry.name, "entry does not belong to this archive")
        }
        let file = ZipByteRegion(bytes: mapping)
        guard let data = file.subregion(offset: entry.dataOffset, count: entry.compressedSize) else {
            throw ZipError(.damaged, file: path, entry: entry.name, "entry data lies outside the file")
        }
        return data.bytes
    }

    private func unsupportedMethodError(_ entry: ZipEntry) -> ZipError {
        ZipError(.damaged, file: path, entry: entry.name,
                 "compression method \(entry.compressionMethod) is not supported (only 0, stored, and 8, deflate)")
    }

    private func verifyChecksum(of bytes: UnsafeRawBufferPointer, entry: ZipEntry) throws {
        guard UInt64(bytes.count) == entry.uncompressedSize else {
            throw ZipError(.damaged, file: path, entry: entry.name,
                           "entry holds \(bytes.count) bytes but declares \(entry.uncompressedSize)")
        }
        var checksum = ZipChecksum()
        checksum.update(bytes)
        guard checksum.value == entry.crc32 else {
            throw ZipError(.damaged, file: path, entry: entry.name,
                           "checksum mismatch: computed CRC-32 \(hex(checksum.value)), the archive records \(hex(entry.crc32))")
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}

/// Reads the end records and the central directory, validating each value against the file
/// before it is used for anything.
private struct CentralDirectoryParser {
    let file: ZipByteRegion
    let path: String

    struct Result {
        var entries: [ZipEntry]
        var indexByName: [String: Int]
    }

    /// Where the central directory is and how many entries it should hold.
    struct Directory {
        var offset: UInt64
        var size: UInt64
        var entryCount: UInt64
        /// Where the central directory must end: the ZIP64 end record or the end record.
        var limit: UInt64
    }

    func damaged(_ reason: String, entry: String = "") -> ZipError {
        ZipError(.damaged, file: path, entry: entry, reason)
    }

    func parse() throws -> Result {
        try checkMagic()
        let directory = try readDirectoryLocation(endRecordOffset: try findEndRecord())
        return try readEntries(directory)
    }

    /// A zip archive starts with a local file header, or with the end record when it is empty.
    /// Checking this first gives "not a zip archive" for HDF5 and other files instead of a vaguer
    /// "damaged archive" (a `.keras` path holding a legacy `.h5` model is a common mix-up).
    func checkMagic() throws {
        let magic = file.uint32(at: 0)
        guard magic != ZipFormat.localFileHeaderSignature, magic != ZipFormat.endOfCentralDirectorySignature else { return }
        let leading = (0 ..< min(4, file.count)).map { String(file.bytes[$0], radix: 16) }.joined(separator: " ")
        let hint = magic == 0x4644_4889 ? "; it looks like an HDF5 file" : ""
        throw ZipError(.notAZipArchive, file: path, "not a zip archive (starts with bytes \(leading))\(hint)")
    }

    /// Searches backwards for the end record whose comment runs exactly to the end of the file.
    func findEndRecord() throws -> Int {
        let recordLength = ZipFormat.endOfCentralDirectoryLength
        let lowest = max(0, file.count - ZipFormat.endOfCentralDirectorySearchLength)
        var offset = file.count - recordLength
        while offset >= lowest {
            if file.uint32(at: offset) == ZipFormat.endOfCentralDirectorySignature,
               offset + recordLength + Int(file.uint16(at: offset + 20)) == file.count {
                return offset
            }
            offset -= 1
        }
        throw damaged("no end of central directory record found; the file is truncated or not a zip archive")
    }

    func readDirectoryLocation(endRecordOffset: Int) throws -> Directory {
        let end = file.subregion(offset: endRecordOffset, count: ZipFormat.endOfCentralDirectoryLength)
        guard let end else { throw damaged("end of central directory record lies outside the file") }
        var directory = Directory(
            offset: UInt64(end.uint32(at: 16)), size: UInt64(end.uint32(at: 12)),
            entryCount: UInt64(end.uint16(at: 10)), limit: UInt64(endRecordOffset))
        var diskNumber = UInt32(end.uint16(at: 4))
        var directoryDisk = UInt32(end.uint16(at: 6))
        var entriesOnDisk = UInt64(end.uint16(at: 8))

        let locatorOffset = endRecordOffset - ZipFormat.zip64EndOfCentralDirectoryLocatorLength
        if let locator = file.subregion(offset: locatorOffset, count: ZipFormat.zip64EndOfCentralDirectoryLocatorLength),
           locator.uint32(at: 0) == ZipFormat.zip64EndOfCentralDirectoryLocatorSignature {
            guard locator.uint32(at: 4) == 0, locator.uint32(at: 16) <= 1 else {
                throw damaged("multi-disk (spanned) archives are not supported")
            }
            let recordOffset = locator.uint64(at: 8)
            guard let record = file.subregion(offset: recordOffset, count: UInt64(ZipFormat.zip64EndOfCentralDirectoryLength)),
                  recordOffset + UInt64(ZipFormat.zip64EndOfCentralDirectoryLength) <= UInt64(locatorOffset)
            else {
                throw damaged("zip64 end of central directory record at offset \(recordOffset) lies outside the file")
            }
            guard record.uint32(at: 0) == ZipFormat.zip64EndOfCentralDirectorySignature else {
                throw damaged("zip64 end of central directory record has a bad signature")
            }
            diskNumber = record.uint32(at: 16)
            directoryDisk = record.uint32(at: 20)
            entriesOnDisk = record.uint64(at: 24)
            directory.entryCount = record.uint64(at: 32)
            directory.size = record.uint64(at: 40)
            directory.offset = record.uint64(at: 48)
            directory.limit = recordOffset
        }

        guard diskNumber == 0, directoryDisk == 0, entriesOnDisk == directory.entryCount else {
            throw damaged("multi-disk (spanned) archives are not supported")
        }
        guard directory.offset <= directory.limit, directory.size <= directory.limit - directory.offset else {
            throw damaged("central directory (offset \(directory.offset), \(directory.size) bytes) lies outside the file")
        }
        guard directory.entryCount <= directory.size / UInt64(ZipFormat.centralDirectoryHeaderLength) else {
            throw damaged("central directory of \(directory.size) bytes cannot hold the \(directory.entryCount) entries it declares")
        }
        return directory
    }

    func readEntries(_ directory: Directory) throws -> Result {
        guard let central = file.subregion(offset: directory.offset, count: directory.size) else {
            throw damaged("central directory lies outside the file")
        }
        var entries: [ZipEntry] = []
        entries.reserveCapacity(Int(directory.entryCount))
        var indexByName: [String: Int] = [:]
        var cursor = 0
        for position in 0 ..< Int(directory.entryCount) {
            let (entry, length) = try readEntry(central: central, at: cursor, position: position, directory: directory)
            cursor += length
            guard indexByName[entry.name] == nil else {
                throw damaged("the archive holds more than one entry with this name", entry: entry.name)
            }
            indexByName[entry.name] = entries.count
            entries.append(entry)
        }
        try checkNoOverlap(entries)
        return Result(entries: entries, indexByName: indexByName)
    }

    /// Parses the central directory header at `cursor`, returning the entry and the header length.
    func readEntry(central: ZipByteRegion, at cursor: Int, position: Int, directory: Directory) throws -> (ZipEntry, Int) {
        let fixedLength = ZipFormat.centralDirectoryHeaderLength
        guard let header = central.subregion(offset: cursor, count: fixedLength),
              header.uint32(at: 0) == ZipFormat.centralDirectoryHeaderSignature
        else {
            throw damaged("central directory header \(position) is missing or has a bad signature")
        }
        let nameLength = Int(header.uint16(at: 28))
        let extraLength = Int(header.uint16(at: 30))
        let commentLength = Int(header.uint16(at: 32))
        let totalLength = fixedLength + nameLength + extraLength + commentLength
        guard let record = central.subregion(offset: cursor, count: totalLength),
              let nameBytes = record.subregion(offset: fixedLength, count: nameLength),
              let extra = record.subregion(offset: fixedLength + nameLength, count: extraLength)
        else {
            throw damaged("central directory header \(position) runs past the end of the central directory")
        }
        let name = String(decoding: nameBytes.bytes, as: UTF8.self)
        guard name.utf8.elementsEqual(nameBytes.bytes) else {
            throw damaged("entry \(position) has a name that is not valid UTF-8")
        }
        let flags = header.uint16(at: 8)
        guard flags & (ZipFormat.encryptedFlag | ZipFormat.strongEncryptionFlag | ZipFormat.maskedHeaderFlag) == 0 else {
            throw damaged("entry is encrypted, which is not supported", entry: name)
        }

        var fields = Zip64Fields(
            uncompressedSize: UInt64(header.uint32(at: 24)), compressedSize: UInt64(header.uint32(at: 20)),
            localHeaderOffset: UInt64(header.uint32(at: 42)), diskStart: UInt32(header.uint16(at: 34)))
        if let problem = fields.apply(extra: extra) { throw damaged(problem, entry: name) }
        guard fields.diskStart == 0 else {
            throw damaged("entry starts on disk \(fields.diskStart); spanned archives are not supported", entry: name)
        }
        let (uncompressedSize, compressedSize, localHeaderOffset) = (fields.uncompressedSize, fields.compressedSize, fields.localHeaderOffset)

        let method = header.uint16(at: 10)
        if method == ZipFormat.storedMethod, compressedSize != uncompressedSize {
            throw damaged("stored entry declares \(compressedSize) bytes in the archive but \(uncompressedSize) uncompressed", entry: name)
        }
        let dataOffset = try readLocalHeader(at: localHeaderOffset, name: name, nameBytes: nameBytes, directory: directory)
        guard compressedSize <= directory.offset - dataOffset else {
            throw damaged("entry data (offset \(dataOffset), \(compressedSize) bytes) runs past the start of the central directory", entry: name)
        }
        let entry = ZipEntry(
            name: name, compressionMethod: method, compressedSize: compressedSize, uncompressedSize: uncompressedSize,
            crc32: header.uint32(at: 16), localHeaderOffset: localHeaderOffset, dataOffset: dataOffset)
        return (entry, totalLength)
    }

    /// Checks the local file header and returns where the entry's data starts. The local name
    /// must match the central one: readers that trust one or the other must not see different files.
    func readLocalHeader(at offset: UInt64, name: String, nameBytes: ZipByteRegion, directory: Directory) throws -> UInt64 {
        let fixedLength = UInt64(ZipFormat.localFileHeaderLength)
        guard offset <= directory.offset, fixedLength <= directory.offset - offset,
              let header = file.subregion(offset: offset, count: fixedLength)
        else {
            throw damaged("local header offset \(offset) is not before the central directory", entry: name)
        }
        guard header.uint32(at: 0) == ZipFormat.localFileHeaderSignature else {
            throw damaged("local header at offset \(offset) has a bad signature", entry: name)
        }
        let nameLength = UInt64(header.uint16(at: 26))
        let extraLength = UInt64(header.uint16(at: 28))
        let dataOffset = offset + fixedLength + nameLength + extraLength
        guard dataOffset <= directory.offset,
              let localName = file.subregion(offset: offset + fixedLength, count: nameLength)
        else {
            throw damaged("local header at offset \(offset) runs into the central directory", entry: name)
        }
        guard localName.bytes.elementsEqual(nameBytes.bytes) else {
            throw damaged("local header names a different file than the central directory", entry: name)
        }
        return dataOffset
    }

    /// Rejects entries whose header-plus-data ranges overlap: legitimate writers never produce
    /// them, and overlapping entries are the basis of non-recursive zip bombs.
    func checkNoOverlap(_ entries: [ZipEntry]) throws {
        let ordered = entries.sorted { $0.localHeaderOffset < $1.localHeaderOffset }
        for (first, second) in zip(ordered, ordered.dropFirst()) where first.dataOffset + first.compressedSize > second.localHeaderOffset {
            throw damaged("entry overlaps the data of entry \(first.name)", entry: second.name)
        }
    }
}
