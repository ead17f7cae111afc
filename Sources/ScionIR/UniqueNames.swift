/// The names taken in one namespace (values, nodes, layers), handing out fresh ones: `base` when it
/// is free, else `base_N` with the smallest free N from `firstSuffix` on. Readers, passes and writers
/// that add nodes share it, so generated names follow one rule.
package struct UniqueNames {
    private var taken: Set<String>
    private let firstSuffix: Int

    package init(taken: some Sequence<String> = [String](), firstSuffix: Int = 1) {
        self.taken = Set(taken)
        self.firstSuffix = firstSuffix
    }

    package func contains(_ name: String) -> Bool { taken.contains(name) }

    /// A name not taken yet, derived from `base`, now taken.
    package mutating func claim(_ base: String) -> String {
        var name = base
        var counter = firstSuffix
        while taken.contains(name) {
            name = "\(base)_\(counter)"
            counter += 1
        }
        taken.insert(name)
        return name
    }
}
