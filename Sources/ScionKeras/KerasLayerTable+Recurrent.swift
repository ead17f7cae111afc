import ScionIR

/// Keras's recurrent layers in the table: SimpleRNN, LSTM and GRU, and Bidirectional around one of
/// them. Settings Scion does not run (a stateful layer, time-major input, a backward layer that is
/// not the forward one reversed) throw `Unsupported`, so the layer stays opaque rather than being
/// run wrongly.
extension KerasLayerTable {
    func recurrent(className: String, config: JSON) throws -> RecurrentAttributes? {
        if className == "Bidirectional" { return try bidirectional(config) }
        if className.hasPrefix("ConvLSTM") { return try convolutionalLSTM(className: className, config: config) }
        guard let cell = RecurrentAttributes.Cell(rawValue: className) else { return nil }
        let c = LayerConfig(json: config, className: className)
        if c.bool("stateful", false) { throw Unsupported(reason: "\(className) with stateful=True") }
        if c.bool("time_major", false) { throw Unsupported(reason: "\(className) with time_major=True") }
        var attributes = RecurrentAttributes(
            cell: cell, units: try c.int("units"), activation: try activation(c.json["activation"] ?? .string("tanh")),
            recurrentActivation: cell == .simpleRNN ? .sigmoid : try activation(c.json["recurrent_activation"] ?? .string("sigmoid")),
            useBias: c.bool("use_bias", true), returnSequences: c.bool("return_sequences", false),
            returnState: c.bool("return_state", false), goBackwards: c.bool("go_backwards", false),
            resetAfter: cell == .gru ? c.bool("reset_after", true) : true)
        attributes.dropout = c.float("dropout", 0)
        attributes.recurrentDropout = c.float("recurrent_dropout", 0)
        attributes.zeroOutputForMask = c.bool("zero_output_for_mask", false)
        return attributes
    }

    /// ConvLSTM1D/2D/3D: an LSTM's settings (`filters` are its units) and the input convolution's.
    /// Keras's convolutions are channels-last here; channels_first stays opaque.
    private func convolutionalLSTM(className: String, config: JSON) throws -> RecurrentAttributes {
        let c = LayerConfig(json: config, className: className)
        let rank = try c.rankFromName()
        guard try c.layout() == .channelsLast else { throw Unsupported(reason: "\(className) with data_format='channels_first'") }
        var lstm = config.object ?? [:]
        lstm["units"] = config["filters"]
        guard var attributes = try recurrent(className: "LSTM", config: .object(lstm)) else {
            throw Unsupported(reason: "\(className) without filters")
        }
        let padding = try c.padding()
        guard padding != .causal else { throw Unsupported(reason: "\(className) with padding='causal'") }
        attributes.convolution = RecurrentConvolution(
            kernelSize: try c.tuple("kernel_size", rank), strides: try c.tuple("strides", rank, default: 1),
            dilations: try c.tuple("dilation_rate", rank, default: 1), padding: padding)
        return attributes
    }

    /// Bidirectional: the wrapped layer's settings, its merge mode; a `backward_layer` (Keras 3 writes
    /// one) must be the same layer reading backwards.
    private func bidirectional(_ config: JSON) throws -> RecurrentAttributes? {
        guard let inner = config["layer"], let innerClass = inner["class_name"]?.string,
              let innerConfig = inner["config"] else { throw Unsupported(reason: "Bidirectional without a layer") }
        guard var forward = try recurrent(className: innerClass, config: innerConfig), forward.bidirectional == nil else {
            return nil
        }
        if forward.convolution != nil { throw Unsupported(reason: "Bidirectional(\(innerClass))") }
        // Keras overrides the wrapped layers' zero_output_for_mask (`zeroOutputsAtMaskedSteps`).
        forward.zeroOutputForMask = false
        if let backward = config["backward_layer"], !backward.isNull {
            guard backward["class_name"]?.string == innerClass, let backwardConfig = backward["config"],
                  var reversed = try recurrent(className: innerClass, config: backwardConfig) else {
                throw Unsupported(reason: "Bidirectional whose backward layer differs from its forward layer")
            }
            reversed.goBackwards.toggle()
            reversed.zeroOutputForMask = false
            guard reversed == forward else {
                throw Unsupported(reason: "Bidirectional whose backward layer differs from its forward layer")
            }
        }
        let mode = config["merge_mode"]
        // Keras's default is concat; `null` keeps the two outputs apart.
        let merge: RecurrentAttributes.Merge? = if let mode { mode.isNull ? .separate : .init(rawValue: mode.string ?? "") } else { .concat }
        guard let merge, merge != .separate || mode?.isNull == true else {
            throw Unsupported(reason: "Bidirectional merge_mode \(mode?.serialized ?? "")")
        }
        forward.bidirectional = merge
        return forward
    }
}
