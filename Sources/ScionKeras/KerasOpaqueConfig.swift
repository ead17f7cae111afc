/// Configs of the layers Scion keeps opaque, written back for Keras 3. tf_keras configs carry keys
/// Keras 3's constructors refuse (`Unrecognized keyword arguments passed to LSTM: {'time_major':
/// False}`), so Keras 3 cannot load a Keras 2 file with an LSTM or a MultiHeadAttention at all; these
/// keys only restate defaults or shapes Keras 3 works out when it builds the layer, so they are
/// dropped, in wrapped layers too (Bidirectional's `layer` and `backward_layer`). A frozen wrapper
/// freezes its wrapped layers' configs as well: tf_keras leaves them `trainable: true`, and Keras 3
/// counts a variable as trainable by its own layer's flag, so the frozen Bidirectional of a Keras 2
/// file came back with every weight trainable.
enum KerasOpaqueConfig {
    static let kerasTwoOnlyKeys: [String: [String]] = [
        "LSTM": ["time_major"], "GRU": ["time_major"], "SimpleRNN": ["time_major"],
        "MultiHeadAttention": ["query_shape", "key_shape", "value_shape", "softmax_robust_masking"],
    ]

    static func forKerasThree(className: String, config: [String: JSON], trainable: Bool) -> [String: JSON] {
        var result = config
        for key in kerasTwoOnlyKeys[className] ?? [] { result[key] = nil }
        if className == "Lambda" { result = lambdaForKerasThree(result) }
        for wrapped in ["layer", "backward_layer"] {
            guard case .object(var inner)? = result[wrapped], let innerClass = inner["class_name"]?.string,
                  let innerConfig = inner["config"]?.object else { continue }
            var innerResult = forKerasThree(className: innerClass, config: innerConfig, trainable: trainable)
            if !trainable { innerResult["trainable"] = .bool(false) }
            inner["config"] = .object(innerResult)
            result[wrapped] = .object(inner)
        }
        return result
    }

    /// A tf_keras Lambda names its function's kind in keys Keras 3's constructor refuses, and stores the
    /// function as `[code, defaults, closure]`; Keras 3 wants `{"class_name": "__lambda__", "config":
    /// {"code", "defaults", "closure"}}`. The same rewrite Keras 3's legacy `.h5` loader makes, so the
    /// `.keras` file holds the same function (the bytecode is kept as read).
    static func lambdaForKerasThree(_ config: [String: JSON]) -> [String: JSON] {
        var result = config
        for key in ["module", "function_type", "output_shape_type", "output_shape_module"] { result[key] = nil }
        if let parts = result["function"]?.array, parts.count == 3 {
            result["function"] = .object(["class_name": "__lambda__", "config": .object(
                ["code": parts[0], "defaults": parts[1], "closure": parts[2]])])
        }
        return result
    }
}
