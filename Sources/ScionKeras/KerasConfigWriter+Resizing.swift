import ScionIR

extension KerasConfigWriter {
    /// Resizing, CenterCrop and RandomCrop with their read settings; the sizes and resampling come
    /// from the attributes (what Scion computes), the rest (a seed, a name) from the read config.
    static func resizing(_ a: ResizingAttributes, trainable: Bool) throws -> KerasLayerSpecification {
        guard a.layout == .channelsLast else { throw Refusal(reason: onnxRefusal) }
        if a.interpolation == .area {
            throw Refusal(reason: "Resizing with area interpolation (tf.keras) has no Keras 3 equivalent")
        }
        if a.tabulatedCubic && a.interpolation == .bicubic && !a.antialias {
            throw Refusal(reason: "tf.keras's bicubic Resizing reads its weights from a 1024-step table; Keras 3's bicubic "
                          + "computes them exactly (outputs differ up to ~2e-3), so Keras 3 cannot compute this layer")
        }
        guard let data = a.configuration.data(using: .utf8), let read = try JSON.parse(data).object else {
            throw Refusal(reason: "\(a.kind.rawValue) has a configuration that is not a JSON object")
        }
        var className = a.kind.rawValue, cropToAspectRatio = a.cropToAspectRatio
        var config = KerasOpaqueConfig.forKerasThree(className: className, config: read, trainable: trainable)
        for key in ["name", "trainable", "dtype"] { config[key] = nil }
        if a.kind == .randomCrop && a.randomCropInference == .centerCropAndResize {
            // tf.keras's RandomCrop center-crops and resizes at inference; Keras 3's passes the image
            // through. Resizing with crop_to_aspect_ratio is exactly tf.keras's inference, so the
            // written model predicts what the read one did (its training-time random crop is lost).
            className = ResizingKind.resizing.rawValue
            config = [:]
            cropToAspectRatio = true
        }
        config["height"] = .number(Double(a.height))
        config["width"] = .number(Double(a.width))
        config["data_format"] = "channels_last"
        if className == ResizingKind.resizing.rawValue {
            config["interpolation"] = .string(a.interpolation.rawValue)
            config["crop_to_aspect_ratio"] = .bool(cropToAspectRatio)
            config["pad_to_aspect_ratio"] = .bool(a.padToAspectRatio)
            config["fill_value"] = .number(Double(a.fillValue))
            config["antialias"] = .bool(a.antialias)
        }
        return KerasLayerSpecification(className: className, config: config)
    }
}
