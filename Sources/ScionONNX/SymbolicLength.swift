/// A length the ONNX reader knows at import: an integer, or a polynomial in the lengths a file leaves
/// open (a dynamic batch `batch`, a sequence `seq`, products such as `batch*4` when torch merges the
/// batch with the heads). Exporters compute reshape targets from `Shape(x)`; keeping those lengths as
/// expressions lets the reader fold the arithmetic and see which entry is the batch.
///
/// Every symbol stands for a tensor's length, so it is assumed to be at least 1: a dynamic batch is never
/// -1 or 0 (what torch's `expand(n, -1, -1)` spelling compares it with).
struct SymbolicLength: Hashable, CustomStringConvertible {
    /// Coefficient by monomial: the sorted symbol names multiplied (repeated for powers); `[]` is the
    /// constant term. No zero coefficients are kept, so equal polynomials are equal values.
    private(set) var terms: [[String]: Int64]

    init(_ value: Int64) { terms = value == 0 ? [:] : [[]: value] }
    init(symbol: String) { terms = [[symbol]: 1] }
    private init(terms: [[String]: Int64]) { self.terms = terms.filter { $0.value != 0 } }

    /// The integer, when the length does not depend on any symbol.
    var constant: Int64? { terms.keys.allSatisfy(\.isEmpty) ? terms[[]] ?? 0 : nil }
    var symbols: Set<String> { Set(terms.keys.flatMap { $0 }) }
    /// A single symbol with coefficient 1 (`batch`, not `batch*4`).
    var singleSymbol: String? {
        guard terms.count == 1, let (monomial, coefficient) = terms.first, monomial.count == 1, coefficient == 1 else { return nil }
        return monomial[0]
    }
    /// At least 1 whatever the symbols are (each of them being at least 1): no negative coefficient.
    var isSurelyPositive: Bool { !terms.isEmpty && terms.values.allSatisfy { $0 > 0 } }

    var description: String {
        guard !terms.isEmpty else { return "0" }
        return terms.sorted { ($0.key.count, $0.key.joined()) > ($1.key.count, $1.key.joined()) }.map { monomial, coefficient in
            monomial.isEmpty ? "\(coefficient)" : (coefficient == 1 ? "" : "\(coefficient)*") + monomial.joined(separator: "*")
        }.joined(separator: " + ")
    }

    /// The value for these symbol values; nil when a symbol is missing or the arithmetic overflows.
    func evaluated(_ assignment: [String: Int64]) -> Int64? {
        var total: Int64 = 0
        for (monomial, coefficient) in terms {
            var product = coefficient
            for symbol in monomial {
                guard let value = assignment[symbol] else { return nil }
                let (next, overflow) = product.multipliedReportingOverflow(by: value)
                guard !overflow else { return nil }
                product = next
            }
            let (sum, overflow) = total.addingReportingOverflow(product)
            guard !overflow else { return nil }
            total = sum
        }
        return total
    }

    static func + (left: SymbolicLength, right: SymbolicLength) -> SymbolicLength {
        SymbolicLength(terms: left.terms.merging(right.terms, uniquingKeysWith: &+))
    }

    static func - (left: SymbolicLength, right: SymbolicLength) -> SymbolicLength {
        left + right.scaled(by: -1)
    }

    static func * (left: SymbolicLength, right: SymbolicLength) -> SymbolicLength {
        var terms: [[String]: Int64] = [:]
        for (a, x) in left.terms {
            for (b, y) in right.terms { terms[(a + b).sorted(), default: 0] &+= x &* y }
        }
        return SymbolicLength(terms: terms)
    }

    func scaled(by factor: Int64) -> SymbolicLength { SymbolicLength(terms: terms.mapValues { $0 &* factor }) }

    /// ONNX's integer Div (truncating). Exact when every coefficient divides; a remainder in the constant
    /// term only when the length is surely not negative (truncation then is the floor). Division by a
    /// symbolic length only when it divides every term (`batch*4 / batch`).
    func divided(by divisor: SymbolicLength) -> SymbolicLength? {
        // Int64.min / -1 overflows: a hostile file's lengths must not trap.
        guard !(divisor.terms.values.contains(-1) && terms.values.contains(.min)) else { return nil }
        if let d = divisor.constant {
            guard d != 0 else { return nil }
            if terms.values.allSatisfy({ $0 % d == 0 }) { return SymbolicLength(terms: terms.mapValues { $0 / d }) }
            guard d > 0, terms.values.allSatisfy({ $0 >= 0 }),
                  terms.allSatisfy({ $0.key.isEmpty || $0.value % d == 0 }) else { return nil }
            var quotient = terms.mapValues { $0 / d }
            quotient[[]] = (terms[[]] ?? 0) / d
            return SymbolicLength(terms: quotient)
        }
        guard divisor.terms.count == 1, let (monomial, coefficient) = divisor.terms.first else { return nil }
        var quotient: [[String]: Int64] = [:]
        for (term, value) in terms {
            var rest = term
            for symbol in monomial {
                guard let position = rest.firstIndex(of: symbol) else { return nil }
                rest.remove(at: position)
            }
            guard value % coefficient == 0 else { return nil }
            quotient[rest] = value / coefficient
        }
        return SymbolicLength(terms: quotient)
    }

    /// ONNX's integer Mod with fmod=0 (the sign of the divisor, Python's %), by a constant: adding a
    /// multiple of the divisor does not change it, so only the constant term's remainder matters.
    func remainder(dividingBy divisor: SymbolicLength) -> SymbolicLength? {
        guard let d = divisor.constant, d != 0, !(d == -1 && terms.values.contains(.min)) else { return nil }
        guard terms.allSatisfy({ $0.key.isEmpty || $0.value % d == 0 }) else { return nil }
        let r = (terms[[]] ?? 0) % d
        return SymbolicLength(r != 0 && (r < 0) != (d < 0) ? r + d : r)
    }

    /// Whether two lengths are equal: nil when it depends on the symbols' values.
    func isEqual(to other: SymbolicLength) -> Bool? {
        if self == other { return true }
        let difference = self - other
        if let value = difference.constant { return value == 0 }
        // A length is at least 1: it never equals a constant below 1 (torch's -1 "keep this length").
        if let c = other.constant, c < 1, isSurelyPositive { return false }
        if let c = constant, c < 1, other.isSurelyPositive { return false }
        return nil
    }

    /// Max or min of two lengths when the order is known whatever the symbols are.
    func extremum(with other: SymbolicLength, maximum: Bool) -> SymbolicLength? {
        let difference = self - other
        let selfIsLarger: Bool
        if let value = difference.constant {
            selfIsLarger = value >= 0
        } else if difference.isSurelyPositive || difference.terms.values.allSatisfy({ $0 >= 0 }) && (difference.terms[[]] ?? 0) >= 0 {
            selfIsLarger = true
        } else if difference.scaled(by: -1).terms.values.allSatisfy({ $0 >= 0 }) {
            selfIsLarger = false
        } else if let c = other.constant, c <= 1, isSurelyPositive {
            selfIsLarger = true
        } else if let c = constant, c <= 1, other.isSurelyPositive {
            selfIsLarger = false
        } else {
            return nil
        }
        return selfIsLarger == maximum ? self : other
    }
}
