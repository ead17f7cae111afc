import CHDF5

/// A failed HDF5 operation: the file, the object inside it, and what went wrong.
///
/// Errors raised after a failed libhdf5 call carry the deepest message of libhdf5's error
/// stack (the innermost function, which usually names the real cause, e.g.
/// "truncated file: eof = 1000, ..."), appended to our own description of the operation.
package struct HDF5Error: Error, CustomStringConvertible, Equatable, Sendable {
    /// Path of the file on disk (or the name given to an in-memory image).
    package var file: String
    /// Path of the object inside the file (e.g. `/model_weights/dense`); empty when the
    /// problem concerns the whole file.
    package var object: String
    /// What went wrong, in one line.
    package var reason: String

    package init(file: String, object: String, reason: String) {
        self.file = file
        self.object = object
        self.reason = reason
    }

    /// "FILE: OBJECT: reason" (or "FILE: reason" when there is no object), on one line:
    /// names taken from an untrusted file cannot smuggle line breaks into it.
    package var description: String {
        let parts = object.isEmpty ? [file, reason] : [file, object, reason]
        return parts.map(Self.oneLine).joined(separator: ": ")
    }

    static func oneLine(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                result += "\\u{\(String(scalar.value, radix: 16))}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}

extension HDF5Error {
    /// An error for a libhdf5 call that just failed on this thread: `action` followed by the
    /// deepest message on libhdf5's error stack, which is then cleared.
    ///
    /// Must be built right after the failing call: any other libhdf5 API call (even a
    /// `H5Tclose` in a `defer`) resets the stack.
    static func library(file: String, object: String, _ action: String) -> HDF5Error {
        if let detail = HDF5Library.takeDeepestMessage(), !detail.isEmpty {
            return HDF5Error(file: file, object: object, reason: "\(action): \(detail)")
        }
        return HDF5Error(file: file, object: object, reason: action)
    }
}

/// Library-wide set-up and the error stack.
enum HDF5Library {
    /// Turns off libhdf5's automatic printing of its error stack to stderr.
    ///
    /// Wraps `H5Eset_auto2`. In a thread-safe libhdf5 (Debian's is) the error stack and its
    /// "auto" printer are per thread, and each new thread starts with printing switched on;
    /// a one-time call is therefore not enough, and every entry point calls this (it is
    /// cheap) before touching the library.
    @inline(__always)
    static func silence() {
        _ = H5Eset_auto2(scion_H5E_DEFAULT(), nil, nil)
    }

    /// The description of the innermost error on this thread's error stack, if any, after
    /// which the stack is cleared.
    ///
    /// Wraps `H5Ewalk2` (walking upward: entry 0 is the most specific error) and `H5Eclear2`.
    static func takeDeepestMessage() -> String? {
        var message: String?
        withUnsafeMutablePointer(to: &message) { pointer in
            _ = H5Ewalk2(scion_H5E_DEFAULT(), H5E_WALK_UPWARD, { index, entry, context in
                guard index == 0, let entry, let context, let desc = entry.pointee.desc else { return 0 }
                context.assumingMemoryBound(to: String?.self).pointee = String(cString: desc)
                return 0
            }, pointer)
        }
        _ = H5Eclear2(scion_H5E_DEFAULT())
        return message
    }
}
