import ScionIR

/// Layers whose variables belong to sublayers: a recurrent layer's cell, Bidirectional's two
/// directions, MultiHeadAttention's four projections. Scion keeps these layers opaque, but their
/// weights must still be found, counted and written back where Keras looks for them.
///
/// Keras names such a weight two ways. A `.keras` archive nests the sublayer's group under the
/// parent's by *attribute*: `layers/bidirectional/forward_layer/cell/vars/0`. A legacy `.h5` lists
/// the weight by *layer names*: `bilstm/forward_lstm/lstm_cell/kernel`. The IR uses the attribute
/// path plus the variable's role (`forward_layer/cell/kernel`) as the parameter's role, the same
/// from either file, so a `.h5` and a `.keras` of one model have the same parameters and each writer
/// can put them back.
///
/// ```
///  Bidirectional(LSTM(6))  "bilstm"          parameters (in Keras's `layer.weights` order)
///    forward_layer  "forward_lstm"             bilstm/forward_layer/cell/kernel              (8, 24)
///      cell         "lstm_cell"                bilstm/forward_layer/cell/recurrent_kernel    (6, 24)
///    backward_layer "backward_lstm"            bilstm/forward_layer/cell/bias                (24,)
///      cell         "lstm_cell"                bilstm/backward_layer/cell/kernel ... (3 more)
/// ```
enum KerasNestedWeights {
    /// One sublayer holding variables: its attribute (archive group), the name Keras gives it in
    /// weight names, and its class and config (which say its own sublayers and roles).
    struct Sublayer {
        let attribute: String
        let weightName: String
        let className: String
        let config: JSON
    }

    static let recurrentCells = ["LSTM": ("LSTMCell", "lstm_cell"), "GRU": ("GRUCell", "gru_cell"),
                                 "SimpleRNN": ("SimpleRNNCell", "simple_rnn_cell"),
                                 "ConvLSTM1D": ("ConvLSTMCell", "conv_lstm_cell"),
                                 "ConvLSTM2D": ("ConvLSTMCell", "conv_lstm_cell"),
                                 "ConvLSTM3D": ("ConvLSTMCell", "conv_lstm_cell")]

    /// The sublayers of a layer that hold variables, in the order Keras creates them (the order of
    /// `layer.weights`); empty for a layer whose variables are all its own.
    static func sublayers(className: String, config: JSON) -> [Sublayer] {
        switch className {
        case "Bidirectional":
            guard let forward = config["layer"] else { return [] }
            let backward = config["backward_layer"] ?? forward
            return [
                wrapped(forward, attribute: "forward_layer", prefix: "forward_"),
                wrapped(backward, attribute: "backward_layer", prefix: "backward_"),
            ]
        case "TimeDistributed":
            guard let inner = config["layer"] else { return [] }
            return [wrapped(inner, attribute: "layer", prefix: "")]
        case "MultiHeadAttention":
            let bias: JSON = .object(["use_bias": config["use_bias"] ?? .bool(true)])
            return [("query_dense", "query"), ("key_dense", "key"), ("value_dense", "value"),
                    ("output_dense", "attention_output")].map {
                Sublayer(attribute: $0.0, weightName: $0.1, className: "EinsumDense", config: bias)
            }
        default:
            guard let (cell, name) = recurrentCells[className] else { return [] }
            return [Sublayer(attribute: "cell", weightName: name, className: cell, config: config)]
        }
    }

    /// A wrapper's inner layer, named in weights as Keras names its copy (`forward_` + name; the
    /// prefix is not doubled when the name already has it).
    private static func wrapped(_ layer: JSON, attribute: String, prefix: String) -> Sublayer {
        let name = layer["config"]?["name"]?.string ?? ""
        let weightName = name.hasPrefix(prefix) ? name : prefix + name
        return Sublayer(attribute: attribute, weightName: weightName, className: layer["class_name"]?.string ?? "",
                        config: layer["config"] ?? .null)
    }

    /// Roles of the variables a class owns itself, in creation order: the classes of the flat table,
    /// plus the sublayer classes above.
    static func ownRoles(className: String, config: JSON) -> [ParameterRole]? {
        let bias: [ParameterRole] = (config["use_bias"]?.bool ?? true) ? [.bias] : []
        switch className {
        case "LSTMCell", "GRUCell", "SimpleRNNCell", "ConvLSTMCell":
            return [.kernel, .recurrentKernel] + bias
        case "EinsumDense" where config["use_bias"] != nil:
            // MultiHeadAttention's projections (`sublayers` gives them `use_bias`).
            return [.kernel] + bias
        case "LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Bidirectional", "TimeDistributed",
             "MultiHeadAttention":
            return []
        default:
            return KerasWeightRoles.roles(className: className, config: config)
        }
    }

    /// The IR role of a stored legacy weight name of layer `layerName`:
    /// `bilstm/forward_lstm/lstm_cell/kernel:0` -> `forward_layer/cell/kernel`. Names of layers
    /// without sublayers give their last component, as before (`conv1/kernel:0` -> `kernel`).
    static func role(fromWeightName name: String, layerName: String, className: String, config: JSON) -> ParameterRole {
        let leaf = KerasWeightRoles.role(fromWeightName: name, className: className)
        guard !sublayers(className: className, config: config).isEmpty else { return leaf }
        // tf.keras names TimeDistributed's inner weights as the wrapper's own (`td/kernel:0`); Keras 3
        // under the inner layer's name (`td/conv2d/kernel`): both are the attribute `layer`'s.
        if className == "TimeDistributed" {
            let role = nestedRole(name, leaf: leaf, layerName: layerName, className: className, config: config)
            if case .sublayer("layer", _) = role { return role }
            return .sublayer("layer", role)
        }
        return nestedRole(name, leaf: leaf, layerName: layerName, className: className, config: config)
    }

    private static func nestedRole(_ name: String, leaf: ParameterRole, layerName: String, className: String, config: JSON) -> ParameterRole {
        var parts = name.split(separator: "/").map(String.init)
        if let colon = parts.last?.lastIndex(of: ":"), let last = parts.last { parts[parts.count - 1] = String(last[..<colon]) }
        // The components after the layer's own name (a Sequential puts the model's name first).
        let own = layerName.split(separator: "/").last.map(String.init) ?? layerName
        guard let position = parts.firstIndex(of: own), position + 1 < parts.count else { return leaf }
        // tf.keras names a ConvLSTM's variables under the layer alone (`convlstm/kernel:0`), its
        // cell being no layer of its own there; they are still the cell's.
        if className.hasPrefix("ConvLSTM"), position + 2 == parts.count { return ParameterRole(rawValue: "cell/" + leaf.rawValue) }
        return ParameterRole(rawValue: attributePath(Array(parts[(position + 1)...]), className: className, config: config))
    }

    /// Maps weight-name components below a layer to attribute components, recursively.
    private static func attributePath(_ parts: [String], className: String, config: JSON) -> String {
        guard parts.count > 1, let first = parts.first else {
            return parts.first.map { KerasWeightRoles.role(fromWeightName: $0, className: className).rawValue } ?? ""
        }
        let candidates = sublayers(className: className, config: config)
        // A single sublayer is that one whatever Keras called it (a renamed cell or wrapped layer).
        // Scion's own .h5 files name sublayers by attribute (`bilstm/forward_layer/cell/kernel`).
        let named = candidates.first { $0.weightName == first || $0.attribute == first }
        guard let sublayer = named ?? (candidates.count == 1 ? candidates.first : nil) else {
            return parts.joined(separator: "/")
        }
        return sublayer.attribute + "/" + attributePath(Array(parts.dropFirst()), className: sublayer.className, config: sublayer.config)
    }

    /// Whether a (possibly nested) role is statistics, never trainable: a nested BatchNormalization
    /// inside TimeDistributed, say. Decided by the innermost class owning the variable.
    static func isAlwaysFrozen(_ role: ParameterRole, className: String, config: JSON) -> Bool {
        var (owner, ownerConfig) = (className, config)
        let parts = role.rawValue.split(separator: "/").map(String.init)
        for attribute in parts.dropLast() {
            guard let sublayer = sublayers(className: owner, config: ownerConfig).first(where: { $0.attribute == attribute }) else {
                return false
            }
            (owner, ownerConfig) = (sublayer.className, sublayer.config)
        }
        return KerasWeightRoles.isAlwaysFrozen(role.leaf, className: owner)
    }
}
