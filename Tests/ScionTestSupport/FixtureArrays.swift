import Foundation
import ScionRuntime

/// A fixture's stored arrays (fixtures/README.md): `NAME.KIND.npy` for one, or `NAME.KIND_0.npy`,
/// `NAME.KIND_1.npy`... for several inputs or outputs, in order. Empty when there are none.
public enum FixtureArrays {
    public static func read(_ folder: URL, _ name: String, _ kind: String) throws -> [RuntimeTensor] {
        let single = folder.appendingPathComponent("\(name).\(kind).npy")
        if FileManager.default.fileExists(atPath: single.path) { return [try NumpyFile.read(single.path)] }
        var result: [RuntimeTensor] = []
        while true {
            let path = folder.appendingPathComponent("\(name).\(kind)_\(result.count).npy").path
            guard FileManager.default.fileExists(atPath: path) else { return result }
            result.append(try NumpyFile.read(path))
        }
    }
}
