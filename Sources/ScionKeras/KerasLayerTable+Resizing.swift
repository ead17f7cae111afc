import ScionIR

/// Resizing, CenterCrop and RandomCrop: their sizes and resampling as typed attributes (what shape
/// inference, the executor and the ONNX writer read), their whole config kept for writing back.
extension KerasLayerTable {
    func resizing(_ kind: ResizingKind, _ c: LayerConfig) throws -> Op {
        let name = c.json["interpolation"]?.string ?? "bilinear"
        guard let interpolation = ResizeInterpolation(rawValue: name) else {
            // tf.keras also offers area, gaussian and mitchellcubic: kernels Scion does not compute.
            throw Unsupported(reason: "\(kind.rawValue) with interpolation '\(name)' (Scion resizes with "
                              + ResizeInterpolation.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        if let fillMode = c.json["fill_mode"]?.string, fillMode != "constant" {
            throw Unsupported(reason: "\(kind.rawValue) with fill_mode '\(fillMode)' (Keras pads with a constant only)")
        }
        let cropToAspect = c.bool("crop_to_aspect_ratio", false), padToAspect = c.bool("pad_to_aspect_ratio", false)
        if cropToAspect && padToAspect {
            throw Unsupported(reason: "\(kind.rawValue) both crops and pads to the aspect ratio; Keras allows one")
        }
        // The typed settings live in the attributes (the writer writes them from there); the rest (a
        // seed) is kept as read.
        var settings = c.json.object ?? [:]
        for key in ["name", "trainable", "dtype", "rng_type", "height", "width", "interpolation", "crop_to_aspect_ratio",
                    "pad_to_aspect_ratio", "fill_mode", "fill_value", "antialias", "data_format"] { settings[key] = nil }
        return .resizing(ResizingAttributes(
            kind: kind, height: try c.int("height"), width: try c.int("width"), interpolation: interpolation,
            cropToAspectRatio: cropToAspect, padToAspectRatio: padToAspect, fillValue: c.float("fill_value", 0),
            antialias: c.bool("antialias", false), tabulatedCubic: kerasMajorVersion < 3 && interpolation == .bicubic,
            randomCropInference: kind == .randomCrop && kerasMajorVersion < 3 ? .centerCropAndResize : .passThrough,
            layout: try c.layout(), configuration: JSON.object(settings).serialized))
    }
}
