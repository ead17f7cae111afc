import ScionIR

/// Another tensor's bytes with its axes reordered, computed only when read.
///
/// A layout pass must change every kernel of a model (HWIO to OIHW, Dense rows in a new order),
/// but a 500 MB model should not be read, let alone held twice, just to be converted. This source
/// keeps the original storage and a `TensorPermutation`; the permuted bytes exist only once someone
/// asks the new parameter for them (a writer streaming initializers, a test). The original is read
/// with `keep: false`, so converting does not leave the unpermuted bytes cached in the old storage
/// as well.
///
/// `byteRange` limits the permutation to one contiguous part of the tensor (the rows of a Dense
/// kernel that read one flattened input of a Concatenate); the bytes outside it are kept as they are.
package final class PermutedTensorSource: ReorderedTensorSource {
    /// The tensor before the permutation.
    package let base: TensorStorage
    package let permutation: TensorPermutation
    /// The bytes of `base` the permutation applies to: all of them unless a part was given.
    package let byteRange: Range<Int>

    /// Throws when `base` does not hold exactly the bytes `permutation` describes (in `byteRange`,
    /// when given).
    package init(base: TensorStorage, permutation: TensorPermutation, byteRange: Range<Int>? = nil) throws {
        let range = byteRange ?? 0..<base.byteCount
        guard range.lowerBound >= 0, range.upperBound <= base.byteCount, range.count == permutation.byteCount else {
            throw PassError(pass: "tensor-permutation", subject: base.location,
                            "holds \(base.byteCount) bytes, but shape \(permutation.shape) of "
                                + "\(permutation.elementSize)-byte elements needs \(permutation.byteCount) at bytes \(range)")
        }
        self.base = base
        self.permutation = permutation
        self.byteRange = range
    }

    package var byteCount: Int { base.byteCount }

    package var location: String {
        let part = byteRange.count == base.byteCount ? "" : " bytes \(byteRange.lowerBound)..<\(byteRange.upperBound)"
        return "\(base.location) (axes \(permutation.shape)\(part) permuted by \(permutation.permutation))"
    }

    /// The original and its shape when the whole tensor is permuted (not a part of it).
    package var original: (storage: TensorStorage, shape: [Int])? {
        byteRange.count == base.byteCount ? (base, permutation.shape) : nil
    }

    package var axisPermutation: [Int] { permutation.permutation }

    /// The original read once into a scratch array and permuted straight into `buffer`.
    package func readBytes(into buffer: UnsafeMutableRawBufferPointer) throws {
        let bytes = try base.bytes(keep: false)
        guard bytes.count == base.byteCount, buffer.count == bytes.count, byteRange.upperBound <= bytes.count else {
            throw PassError(pass: "tensor-permutation", subject: base.location,
                            "read \(bytes.count) bytes into \(buffer.count), expected \(base.byteCount)")
        }
        try bytes.withUnsafeBytes { source in
            if byteRange.count != bytes.count { buffer.copyMemory(from: source) }
            try permutation.apply(from: UnsafeRawBufferPointer(rebasing: source[byteRange]),
                                  into: UnsafeMutableRawBufferPointer(rebasing: buffer[byteRange]))
        }
    }

    package func readBytes() throws -> [UInt8] {
        let bytes = try base.bytes(keep: false)
        guard bytes.count == base.byteCount, byteRange.upperBound <= bytes.count else {
            throw PassError(pass: "tensor-permutation", subject: base.location,
                            "read \(bytes.count) bytes, expected \(base.byteCount)")
        }
        if byteRange.count == bytes.count { return try permutation.apply(to: bytes) }
        var result = bytes
        result.replaceSubrange(byteRange, with: try permutation.apply(to: Array(bytes[byteRange])))
        return result
    }
}
