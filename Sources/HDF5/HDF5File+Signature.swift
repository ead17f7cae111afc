import CHDF5
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension HDF5File {
    /// Checks, before libhdf5 sees `path`, that it names a readable, non-empty regular file
    /// with the HDF5 signature, and throws a plain one-line error otherwise.
    static func checkFileOnDisk(_ path: String) throws {
        func fail(_ reason: String) -> HDF5Error {
            HDF5Error(file: path, object: "", reason: reason)
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw fail("no such file") }
            throw fail("cannot be read: \(Self.systemMessage(code))")
        }
        let type = info.st_mode & S_IFMT
        guard type != S_IFDIR else { throw fail("is a directory, not a file") }
        guard type == S_IFREG else { throw fail("is not a regular file") }
        guard info.st_size > 0 else { throw fail("the file is empty") }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw fail("cannot be opened for reading: \(Self.systemMessage(errno))") }
        defer { _ = close(fd) }
        let size = Int(info.st_size)
        let found = findSignature(size: size) { offset, count in
            var buffer = [UInt8](repeating: 0, count: count)
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return got == count ? buffer : []
        }
        guard found else {
            throw fail("not an HDF5 file (no HDF5 signature at offset 0 or after a user block)")
        }
    }

    /// Whether the HDF5 signature occurs where libhdf5 looks for it: offset 0, then 512,
    /// 1024, 2048, ... (a user block is a power of two of at least 512 bytes).
    static func findSignature(size: Int, read: (_ offset: Int, _ count: Int) -> [UInt8]) -> Bool {
        let length = signature.count
        var offset = 0
        while size >= length, offset <= size - length {
            if read(offset, length) == signature { return true }
            if offset == 0 {
                offset = 512
            } else {
                let (next, overflow) = offset.multipliedReportingOverflow(by: 2)
                if overflow { return false }
                offset = next
            }
        }
        return false
    }

    private static func systemMessage(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}
