import ScionIR

/// A layer found in a Keras model config, with where it sits, so weights can be bound to it.
struct KerasLayerRecord {
    /// The layer's own name (`conv1`).
    let name: String
    /// With the enclosing models' names: `base/conv1`. Unique in the graph.
    let scopedName: String
    let className: String
    let config: JSON
    /// Path of the enclosing model (`base`), empty at top level.
    let scope: String
    /// The layer's flag combined with its enclosing models' flags, as Keras applies them.
    let trainable: Bool
    /// Keras 3 object path of the layer inside `model.weights.h5` (`layers/functional/layers/conv2d`).
    let objectPath: String
    /// Indices in the graph's nodes of this layer's calls.
    var nodeIndices: [Int] = []
    /// True for a nested model: its weights belong to the layers inside it.
    let isModel: Bool
    /// Records of the layers inside a nested model.
    var children: [Int] = []
}

/// Keras's `to_snake_case`, which names layers' groups in Keras 3 weight files
/// (`BatchNormalization` -> `batch_normalization`, `Conv2D` -> `conv2d`, `ReLU` -> `re_lu`).
func kerasSnakeCase(_ name: String) -> String {
    let characters = Array(name.filter { $0.isLetter || $0.isNumber || $0 == "_" })
    // Rule 1: an upper-case letter followed by lower-case ones starts a word, unless at the start.
    var first: [Character] = []
    for (index, character) in characters.enumerated() {
        if index > 0, character.isUppercase, index + 1 < characters.count, characters[index + 1].isLowercase {
            first.append("_")
        }
        first.append(character)
    }
    // Rule 2: a lower-case letter followed by an upper-case one gets a separator between them.
    var second: [Character] = []
    for (index, character) in first.enumerated() {
        second.append(character)
        if character.isLowercase, index + 1 < first.count, first[index + 1].isUppercase { second.append("_") }
    }
    return String(second).lowercased()
}

/// Model classes: a layer of one of these classes is a nested model.
let kerasModelClassNames: Set<String> = ["Functional", "Sequential", "Model"]
