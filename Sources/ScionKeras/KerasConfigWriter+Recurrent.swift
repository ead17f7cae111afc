import ScionIR

/// The recurrent op as Keras 3 layers: SimpleRNN, LSTM, GRU, or Bidirectional wrapping one. The
/// parameters' roles already are Keras's attribute paths (`forward_layer/cell/kernel`), which the
/// weight writers follow, so only the config is made here.
extension KerasConfigWriter {
    static func recurrent(_ a: RecurrentAttributes, trainable: Bool) throws -> KerasLayerSpecification {
        guard !a.timeMajor else {
            throw Refusal(reason: "\(a.cell.rawValue) in ONNX's time-major form, without the Transposes around it that "
                          + "KerasLayersPass folds into a Keras layer")
        }
        var cell = try recurrentCellConfig(a)
        if let convolution = a.convolution {
            cell["units"] = nil
            cell["filters"] = .number(Double(a.units))
            cell["kernel_size"] = ints(convolution.kernelSize)
            cell["strides"] = ints(convolution.strides)
            cell["dilation_rate"] = ints(convolution.dilations)
            cell["padding"] = .string(try padding(convolution.padding))
            cell["data_format"] = "channels_last"
        }
        guard let merge = a.bidirectional else { return KerasLayerSpecification(className: a.layerName, config: cell) }
        // Keras builds the backward layer from the wrapped one (go_backwards flipped), so the wrapped
        // layer alone says both.
        var inner = cell
        inner["name"] = .string(kerasSnakeCase(a.cell.rawValue))
        // Keras 3 rebuilds the wrapped layers from this config: a frozen wrapper's layers are frozen.
        inner["trainable"] = .bool(trainable)
        let layer: JSON = .object(["module": "keras.layers", "class_name": .string(a.cell.rawValue), "config": .object(inner),
                                   "registered_name": .null])
        return KerasLayerSpecification(className: "Bidirectional", config: [
            "layer": layer, "merge_mode": merge == .separate ? .null : .string(merge.rawValue)])
    }

    private static func recurrentCellConfig(_ a: RecurrentAttributes) throws -> [String: JSON] {
        func name(_ activation: Activation) throws -> JSON {
            guard let name = activationName(activation) else {
                throw Refusal(reason: "\(a.layerName) with activation \(activation.displayName) has no Keras 3 equivalent")
            }
            return .string(name)
        }
        var config: [String: JSON] = [
            "units": .number(Double(a.units)), "activation": try name(a.activation), "use_bias": .bool(a.useBias),
            "return_sequences": .bool(a.returnSequences), "return_state": .bool(a.returnState),
            "go_backwards": .bool(a.goBackwards), "stateful": .bool(false), "unroll": .bool(false),
            "dropout": number(a.dropout), "recurrent_dropout": number(a.recurrentDropout)]
        // Bidirectional sets its layers' zero_output_for_mask itself.
        if a.zeroOutputForMask && a.bidirectional == nil { config["zero_output_for_mask"] = .bool(true) }
        switch a.cell {
        case .simpleRNN: break
        case .lstm: config["recurrent_activation"] = try name(a.recurrentActivation)
        case .gru:
            config["recurrent_activation"] = try name(a.recurrentActivation)
            config["reset_after"] = .bool(a.resetAfter)
        }
        return config
    }
}
