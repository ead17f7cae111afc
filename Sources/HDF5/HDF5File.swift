import CHDF5
import Foundation

/// An open HDF5 file. Closed when this object and every group and dataset opened from it
/// are gone (children hold a strong reference to the file's handle).
///
/// Untrusted files: this module checks the signature before opening, never follows soft or
/// external links, refuses datasets stored outside the file (external raw storage, virtual
/// datasets), checks element counts for overflow, bounds allocations, and compares
/// contiguous storage with the declared shape. libhdf5 1.10.8 itself crashes or hangs on some
/// damaged object headers, global heaps (variable-length strings) or link tables (h5dump does the
/// same), so a file opened for reading is first walked in a child process
/// (`HDF5File+Isolation.swift`): a crash there is an error, and variable-length strings, the usual
/// crash site, are only ever read there.
package final class HDF5File: Sendable {
    /// The path given when opening or creating, or the name of an in-memory image.
    package let path: String
    let handle: HDF5Handle
    /// Variable-length string attributes read by the walk in a child process (files opened for
    /// reading; empty for files being written).
    let walkedStrings: WalkedStrings

    /// The 8-byte HDF5 format signature: `\x89HDF\r\n\x1a\n`.
    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    private init(path: String, id: hid_t, walkedStrings: WalkedStrings = WalkedStrings()) {
        self.path = path
        self.handle = HDF5Handle(id: id, kind: .file, owner: nil)
        self.walkedStrings = walkedStrings
    }

    /// Opens an existing file read-only.
    ///
    /// Before libhdf5 sees the file, checks that it exists, is a regular non-empty file and
    /// carries the HDF5 signature at offset 0, 512, 1024, 2048, ... (after a user block),
    /// so that the common mistakes get a clear message. Wraps `H5Fis_hdf5` and `H5Fopen`
    /// (with `H5F_CLOSE_STRONG`, so closing the file really closes it).
    /// `walkRecord`: where the walk of this file is stored, and taken from when the file is unchanged.
    package convenience init(readingFrom path: String, walkRecord: HDF5WalkRecords? = nil) throws {
        HDF5Library.silence()
        try Self.checkFileOnDisk(path)
        let isHDF5 = H5Fis_hdf5(path)
        guard isHDF5 > 0 else {
            if isHDF5 < 0 { throw HDF5Error.library(file: path, object: "", "cannot be opened as an HDF5 file") }
            throw HDF5Error(file: path, object: "", reason: "not an HDF5 file (libhdf5 finds no superblock)")
        }
        let fapl = H5Pcreate(scion_H5P_FILE_ACCESS())
        guard fapl >= 0 else { throw HDF5Error.library(file: path, object: "", "cannot create a file access property list") }
        defer { Temporary.closePlist(fapl) }
        guard H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0 else {
            throw HDF5Error.library(file: path, object: "", "cannot set the file close degree")
        }
        let id = H5Fopen(path, scion_H5F_ACC_RDONLY(), fapl)
        guard id >= 0 else { throw HDF5Error.library(file: path, object: "", "cannot open HDF5 file") }
        let strings: WalkedStrings
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        do { strings = try Self.walk(id, path: path, fileSize: size, record: walkRecord) } catch {
            H5Fclose(id)
            throw error
        }
        self.init(path: path, id: id, walkedStrings: strings)
    }

    /// Opens an HDF5 file image held in memory, read-only and without copying it.
    ///
    /// The caller guarantees that `bytes` stays valid and unchanged for as long as this
    /// file **or any group or dataset opened from it** is alive; libhdf5 reads straight
    /// from that memory and neither copies nor frees it. `name` is only used as `path` and
    /// in error messages.
    ///
    /// Wraps `H5LTopen_file_image` with `H5LT_FILE_IMAGE_DONT_COPY |
    /// H5LT_FILE_IMAGE_DONT_RELEASE` (and without `H5LT_FILE_IMAGE_OPEN_RW`).
    /// `walkRecord`: as for a file on disk (the identity of the file that holds the image).
    package init(readingImage bytes: UnsafeRawBufferPointer, name: String, walkRecord: HDF5WalkRecords? = nil) throws {
        HDF5Library.silence()
        guard let base = bytes.baseAddress, !bytes.isEmpty else {
            throw HDF5Error(file: name, object: "", reason: "the file is empty")
        }
        guard Self.findSignature(size: bytes.count, read: { offset, count in
            Array(bytes[offset..<(offset + count)])
        }) else {
            throw HDF5Error(file: name, object: "", reason: "not an HDF5 file (no HDF5 signature)")
        }
        let flags = scion_H5LT_FILE_IMAGE_DONT_COPY() | scion_H5LT_FILE_IMAGE_DONT_RELEASE()
        // H5LTopen_file_image (high-level library, outside libhdf5's thread-safety lock)
        // names each image "file_image_<counter>" from an unguarded static counter; two
        // images given the same name would be taken for the same open file.
        let (id, detail) = Self.imageLock.withLock { () -> (hid_t, String?) in
            HDF5Library.silence()
            let id = H5LTopen_file_image(UnsafeMutableRawPointer(mutating: base), bytes.count, flags)
            return (id, id >= 0 ? nil : HDF5Library.takeDeepestMessage())
        }
        guard id >= 0 else {
            throw HDF5Error(file: name, object: "", reason: "cannot open HDF5 file image" + (detail.map { ": \($0)" } ?? ""))
        }
        do { walkedStrings = try Self.walk(id, path: name, fileSize: bytes.count, record: walkRecord) } catch {
            H5Fclose(id)
            throw error
        }
        self.path = name
        self.handle = HDF5Handle(id: id, kind: .file, owner: nil)
    }

    /// Creates a new file; fails if `path` already exists (write to a temporary path, then
    /// rename over the destination).
    ///
    /// Objects are written in the HDF5 1.8 format (readable by every h5py/Keras since
    /// 2008), which, unlike the "earliest" default, can hold attributes larger than 64 KiB
    /// (big `model_config` strings). Wraps `H5Fcreate` with `H5F_ACC_EXCL`.
    package convenience init(creating path: String) throws {
        HDF5Library.silence()
        if FileManager.default.fileExists(atPath: path) {
            throw HDF5Error(file: path, object: "", reason: "already exists; create a new file and rename it into place")
        }
        let fapl = H5Pcreate(scion_H5P_FILE_ACCESS())
        guard fapl >= 0 else { throw HDF5Error.library(file: path, object: "", "cannot create a file access property list") }
        defer { Temporary.closePlist(fapl) }
        guard H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0,
              H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) >= 0
        else {
            throw HDF5Error.library(file: path, object: "", "cannot configure the file access property list")
        }
        let id = H5Fcreate(path, scion_H5F_ACC_EXCL(), scion_H5P_DEFAULT(), fapl)
        guard id >= 0 else { throw HDF5Error.library(file: path, object: "", "cannot create HDF5 file") }
        self.init(path: path, id: id)
    }

    /// The root group `/`. It uses the file's own identifier, which libhdf5 accepts
    /// wherever a group is expected.
    package var root: HDF5Group {
        HDF5Group(file: self, handle: handle, path: "/")
    }

    /// Writes everything buffered for this file to disk. Wraps `H5Fflush`.
    package func flush() throws {
        HDF5Library.silence()
        guard H5Fflush(handle.id, H5F_SCOPE_GLOBAL) >= 0 else {
            throw HDF5Error.library(file: path, object: "", "cannot flush file")
        }
    }
}

extension HDF5File {
    /// Serialises `H5LTopen_file_image` calls (see `init(readingImage:name:)`).
    private static let imageLock = NSLock()
}
