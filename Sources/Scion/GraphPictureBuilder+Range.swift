/// `from` / `to`: the part of the graph downstream of one layer and upstream of another.
extension GraphPictureBuilder {
    /// The leaves to draw: all of them, or those reachable from `from` and reaching `to`.
    func keptLeaves() throws -> Set<String> {
        let all = Set(leaves.keys)
        guard options.from != nil || options.to != nil else { return all }
        var consumers: [String: [String]] = [:]
        var producers: [String: [String]] = [:]
        for leaf in leaves.values {
            for input in leaf.row.inputs {
                guard let source = producer(input) else { continue }
                consumers[source, default: []].append(leaf.name)
                producers[leaf.name, default: []].append(source)
            }
        }
        func reach(_ start: String, _ next: [String: [String]]) -> Set<String> {
            var seen: Set<String> = [start], stack = [start]
            while let name = stack.popLast() {
                for other in next[name] ?? [] where seen.insert(other).inserted { stack.append(other) }
            }
            return seen
        }
        var kept = all
        if let from = options.from { kept.formIntersection(reach(try resolve(from, option: "--from"), consumers)) }
        if let to = options.to { kept.formIntersection(reach(try resolve(to, option: "--to"), producers)) }
        if kept.isEmpty {
            throw ScionError(file: file, "no layer lies between \(options.from ?? "the inputs") and \(options.to ?? "the outputs")")
        }
        return kept
    }

    /// A layer by full name, by its name inside its model, or by a unique suffix of its full name.
    func resolve(_ name: String, option: String) throws -> String {
        if leaves[name] != nil { return name }
        let byShortName = leaves.values.filter { $0.row.name == name }.map(\.name)
        if byShortName.count == 1 { return byShortName[0] }
        let bySuffix = leaves.keys.filter { $0.hasSuffix("/" + name) }
        if bySuffix.count == 1 { return bySuffix[0] }
        let candidates = (byShortName.isEmpty ? bySuffix : byShortName).sorted()
        if candidates.isEmpty { throw ScionError(file: file, "\(option) \(name): no such layer") }
        throw ScionError(file: file, "\(option) \(name): several layers have that name (\(candidates.prefix(4).joined(separator: ", ")))")
    }
}
