import Foundation

/// The names of a classifier's output units, kept with the model so later commands print "cat", not
/// "2". Every format stores them under the same key, `class_names`, as a JSON array of strings: in a
/// `.keras` archive's `metadata.json` (Keras reads only its own keys there and loads the file as
/// before) and in an ONNX file's `metadata_props`. In the IR they live in `metadata` under that key,
/// so every pass and writer carries them along untouched.
extension Graph {
    /// The key, in the IR's metadata and in the files.
    public static let classNamesKey = "class_names"

    /// The stored class names, in output-unit order; nil when the model has none (or the stored
    /// value is not a JSON array of strings, which a reader treats as absent rather than failing a
    /// load over a note).
    public var classNames: [String]? {
        get { metadata[Self.classNamesKey].flatMap(Self.decodeClassNames) }
        set { metadata[Self.classNamesKey] = newValue.map(Self.encodeClassNames) }
    }

    /// `["cat","dog"]`: the stored spelling.
    public static func encodeClassNames(_ names: [String]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: names, options: [.withoutEscapingSlashes]) else { return "[]" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The names from their stored spelling; nil unless it is a JSON array of strings.
    public static func decodeClassNames(_ text: String) -> [String]? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let names = object as? [String] else { return nil }
        return names
    }
}
