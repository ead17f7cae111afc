import Foundation

/// The settings of a layer Scion keeps opaque (an LSTM, a MultiHeadAttention...), for `diff`: its
/// Keras config flattened to one field per leaf (`dropout`, `layer.config.units`), so a change reads
/// as one line (`gru: recurrent_dropout 0 -> 0.1`) instead of two whole JSON documents.
///
/// Keras writes the same layer differently in `.h5` and `.keras` files and across versions; those
/// spellings are not changes of the model, so they are normalised first:
/// - `build_config`, `shared_object_id`, `module` and `registered_name` are serialisation
///   bookkeeping, not settings; `trainable` (also a wrapped layer's) is compared as trainability;
/// - a dtype policy (`{"class_name": "DTypePolicy", "config": {"name": "float32"}}`) is its name,
///   as Keras 2 writes it (`"float32"`).
/// A key only one side has (a Keras-2-only key Scion drops when it writes Keras 3, a key a newer
/// Keras added with its default) is left out by the caller, as for every layer's fields.
enum OpaqueConfigFields {
    static let bookkeeping: Set<String> = ["build_config", "shared_object_id", "module", "registered_name", "trainable"]

    static func fields(_ configuration: String) -> [LayerField] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(configuration.utf8), options: [.fragmentsAllowed]) else {
            return [LayerField("config", configuration)]
        }
        var fields: [LayerField] = []
        flatten(normalised(object), path: "", into: &fields)
        return fields
    }

    static func normalised(_ value: Any) -> Any {
        if let dictionary = value as? [String: Any] {
            if dictionary["class_name"] as? String == "DTypePolicy", let name = (dictionary["config"] as? [String: Any])?["name"] {
                return name
            }
            var result: [String: Any] = [:]
            for (key, item) in dictionary where !bookkeeping.contains(key) { result[key] = normalised(item) }
            return result
        }
        if let array = value as? [Any] { return array.map(normalised) }
        return value
    }

    static func flatten(_ value: Any, path: String, into fields: inout [LayerField]) {
        if let dictionary = value as? [String: Any], !dictionary.isEmpty {
            for key in dictionary.keys.sorted() {
                flatten(dictionary[key] as Any, path: path.isEmpty ? key : path + "." + key, into: &fields)
            }
            return
        }
        let name = path.isEmpty ? "config" : path
        if let number = value as? NSNumber, String(cString: number.objCType) != "c" {  // "c": a JSON true/false
            let x = number.doubleValue
            var field = LayerField(name, x.rounded() == x && abs(x) < 1e15 ? String(Int(x)) : Readable.setting(x))
            field.numbers = [x]
            fields.append(field)
        } else {
            fields.append(LayerField(name, text(value)))
        }
    }

    /// A leaf as JSON (`null`, `true`, `"tanh"`, `[1, 2]`), keys sorted.
    static func text(_ value: Any) -> String {
        if value is NSNull { return "null" }
        if let string = value as? String { return string }
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        else { return "\(value)" }
        return String(decoding: data, as: UTF8.self)
    }
}
