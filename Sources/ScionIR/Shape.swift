/// A tensor shape whose dimensions may be unknown (`nil`), as the batch dimension usually is.
public struct Shape: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Each dimension's size; nil where it is unknown.
    public var dimensions: [Int?]

    /// A shape from its dimensions (nil for unknown ones).
    public init(_ dimensions: [Int?]) { self.dimensions = dimensions }

    /// Number of dimensions.
    public var rank: Int { dimensions.count }

    /// The size of dimension `index` (nil when unknown).
    public subscript(index: Int) -> Int? {
        get { dimensions[index] }
        set { dimensions[index] = newValue }
    }

    /// Number of elements, when every dimension is known and the product does not overflow.
    public var elementCount: Int? { Shape.product(dimensions) }

    /// Product of known dimensions; nil if one is unknown or the product overflows.
    package static func product(_ dimensions: [Int?]) -> Int? {
        var result = 1
        for dimension in dimensions {
            guard let dimension, dimension >= 0 else { return nil }
            let (value, overflow) = result.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            result = value
        }
        return result
    }

    /// Resolves a negative axis (`-1` is the last) against this rank; nil when out of range.
    package func normalizedAxis(_ axis: Int) -> Int? {
        let resolved = axis < 0 ? axis + rank : axis
        return (0..<rank).contains(resolved) ? resolved : nil
    }

    /// Keras's notation: `(None, 32, 32, 3)`.
    public var description: String {
        let parts = dimensions.map { $0.map(String.init) ?? "None" }
        return parts.count == 1 ? "(\(parts[0]),)" : "(" + parts.joined(separator: ", ") + ")"
    }
}

extension Array where Element == Int {
    /// Product of the elements, nil on overflow or a negative element.
    package var checkedProduct: Int? { Shape.product(self.map { Optional($0) }) }
}
