/// Everything that can go wrong reading or writing a Keras file, with the context a user needs:
/// the file, and the layer, tensor or archive entry concerned.
package struct KerasError: Error, CustomStringConvertible, Equatable, Sendable {
    package enum Kind: String, Sendable {
        /// The file is not a Keras model at all (wrong magic, empty, not HDF5, not a zip).
        case notAKerasFile
        /// A `.keras` zip archive is damaged or hostile.
        case invalidArchive
        /// `model_config` / `config.json` is missing or is not the JSON Keras writes.
        case invalidConfig
        /// A layer's weights are missing or contradict its configuration.
        case invalidWeights
        /// The file holds weights only; the operation needs the architecture.
        case weightsOnly
        /// Writing failed.
        case writeFailed
    }

    package var kind: Kind
    package var file: String
    /// Layer, tensor or entry the problem is about; empty when it concerns the whole file.
    package var subject: String
    package var reason: String

    package init(_ kind: Kind, file: String, subject: String = "", _ reason: String) {
        self.kind = kind
        self.file = file
        self.subject = subject
        self.reason = reason
    }

    package var description: String {
        subject.isEmpty ? "\(file): \(reason)" : "\(file): \(subject): \(reason)"
    }
}
