import Foundation
import Scion
import ScionRuntime

/// The arrays for a model's inputs: each `.npy` is the next input; an `.npz` gives its arrays by
/// name (or, when the names are not the model's, in order). A count that does not fit names the
/// model (`model`, its file) that refuses it.
func readInputs(_ paths: [String], for names: [String], model: String) throws -> [String: RuntimeTensor] {
    var ordered: [RuntimeTensor] = []
    var named: [String: RuntimeTensor] = [:]
    for path in paths {
        if path.hasSuffix(".npz") {
            for (name, tensor) in try NumpyArchive.read(path) {
                if names.contains(name) { named[name] = tensor } else { ordered.append(tensor) }
            }
        } else {
            ordered.append(try NumpyFile.read(path))
        }
    }
    let missing = names.filter { named[$0] == nil }
    guard ordered.count == missing.count else {
        throw ScionError(file: model, "the model takes \(names.count) input(s) (\(names.joined(separator: ", "))); "
            + "\(ordered.count + named.count) array(s) given")
    }
    for (name, tensor) in zip(missing, ordered) { named[name] = tensor }
    return named
}
