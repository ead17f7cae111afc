import CVectorKernels

/// A product by a matrix of at most 64 columns (a convolution's filters) through CVectorKernels'
/// `scion_gemm_narrow`: the filters packed once (`[depth][columns rounded up to 16]`), then any
/// number of row blocks multiplied against them, on any thread. nil where the CPU has neither AVX2
/// nor AVX-512 or there are more columns: the caller's BLAS does it then.
final class NarrowProduct: @unchecked Sendable {
    let columns: Int, depth: Int
    private let packed: WeightValues

    /// `filters`: `[columns][depth]` row by row (`order` `filtersFirst`: a convolution's
    /// `[F, kh·kw·C]`), or `[depth][columns]` (`filtersLast`: Keras's HWIO kernel).
    init?(filters: WeightValues, order: Kernels.FilterOrder = .filtersFirst, columns: Int, depth: Int) {
        let padded = scion_narrow_padded(columns)
        guard Kernels.narrowProductsRun, (1...64).contains(columns), depth > 0,
              filters.count == (order == .panels ? padded : columns) * depth else { return nil }
        (self.columns, self.depth) = (columns, depth)
        // Panels (one, here) and Keras's kernel with a multiple of 16 filters already are the packed form: no copy.
        if order == .panels || (order == .filtersLast && padded == columns) {
            packed = filters
            return
        }
        packed = WeightValues([Float](unsafeUninitializedCapacity: depth * padded) { buffer, count in
            filters.withUnsafeBufferPointer { source in
                guard let target = buffer.baseAddress, let from = source.baseAddress else { return }
                switch order {
                case .filtersFirst: scion_pack_narrow(from, columns, depth, target)
                case .filtersLast, .panels:
                    // Already `[depth][columns]`: each row padded with zeros to the vector width.
                    for k in 0..<depth {
                        (target + k * padded).update(from: from + k * columns, count: columns)
                        (target + k * padded + columns).update(repeating: 0, count: padded - columns)
                    }
                }
            }
            count = depth * padded
        })
    }

    /// `body` with the packed filters, `[depth][columns rounded up to 16]`; false when there are none.
    func withPackedFilters(_ body: (UnsafePointer<Float>) -> Void) -> Bool {
        packed.withUnsafeBufferPointer { $0.baseAddress.map(body) != nil }
    }

    /// `c[rows][columns] = a[rows][depth] · filtersᵀ`, rows contiguous. nil when the kernel refused.
    func multiply(_ a: UnsafePointer<Float>, rows: Int, into c: UnsafeMutablePointer<Float>) -> Void? {
        packed.withUnsafeBufferPointer { b in
            scion_gemm_narrow(a, depth, b.baseAddress, c, columns, rows, columns, depth) == 0 ? () : nil
        }
    }
}
