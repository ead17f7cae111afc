import ScionIR

/// Keras's Resizing, CenterCrop and RandomCrop (channels-first here) as ONNX: Pad and/or Slice for the
/// window, then Resize with the attributes that reproduce Keras's resampling (measured against Keras 3
/// on JAX with onnxruntime): half_pixel for bilinear and bicubic (Keys' a = -0.5, renormalised at the
/// border = exclude_outside), half_pixel rounding halves up for nearest, antialias from opset 18.
extension ONNXGraphBuilder {
    mutating func emitResizing(_ node: Node, _ a: ResizingAttributes, input: String, output: String, inputShape: Shape?) throws {
        try requireChannelsFirst(a.layout, node)
        if a.isPassThrough {
            add("Identity", name: node.name, inputs: [input], output: output)
            return
        }
        guard let shape = inputShape, shape.rank == 4, let height = shape[2], let width = shape[3] else {
            throw unsupported(node, "\(a.kind.rawValue) needs the image's height and width known to export")
        }
        let plan = a.plan(inputHeight: height, inputWidth: width)
        var window = input
        let padTop = max(0, -plan.top), padLeft = max(0, -plan.left)
        let padBottom = max(0, plan.top + plan.windowHeight - height), padRight = max(0, plan.left + plan.windowWidth - width)
        if padTop + padLeft + padBottom + padRight > 0 {
            let pads = constant("\(node.name)/pads", int64s: [0, 0, padTop, padLeft, 0, 0, padBottom, padRight].map { Int64($0) })
            let value = constant("\(node.name)/fill_value", floats: [a.fillValue], dimensions: [])
            window = intermediate("Pad", name: "\(node.name)/pad", inputs: [window, pads, value],
                                  attributes: [.string("mode", "constant")])
        }
        let paddedHeight = height + padTop + padBottom, paddedWidth = width + padLeft + padRight
        let top = plan.top + padTop, left = plan.left + padLeft
        if top != 0 || left != 0 || plan.windowHeight != paddedHeight || plan.windowWidth != paddedWidth {
            let starts = constant("\(node.name)/starts", int64s: [Int64(top), Int64(left)])
            let ends = constant("\(node.name)/ends", int64s: [Int64(top + plan.windowHeight), Int64(left + plan.windowWidth)])
            let axes = constant("\(node.name)/axes", int64s: [2, 3])
            window = intermediate("Slice", name: "\(node.name)/crop", inputs: [window, starts, ends, axes])
        }
        guard plan.resamples else {
            add("Identity", name: node.name, inputs: [window], output: output)
            return
        }
        let attributes = try resizeAttributes(node, a)
        // Constant scales (the batch is usually dynamic, so sizes would have to be computed): ONNX
        // sizes the output floor(length * scale), so a scale whose float32 product falls short of
        // the wanted length is nudged up by ulps (a change in the sampling positions of ~1e-7).
        let scales = [Float(1), 1, Self.scale(from: plan.windowHeight, to: plan.outputHeight),
                      Self.scale(from: plan.windowWidth, to: plan.outputWidth)]
        add("Resize", name: node.name, inputs: [window, "", constant("\(node.name)/scales", floats: scales, dimensions: [4])],
            output: output, attributes: attributes)
    }

    /// `output / input` in float32, at least large enough that `floor(input * scale) == output` whether
    /// the product is taken in float32 (onnxruntime) or in double (ONNX's shape inference).
    static func scale(from input: Int, to output: Int) -> Float {
        var scale = Float(output) / Float(input)
        while Double(input) * Double(scale) < Double(output) || (Float(input) * scale).rounded(.down) < Float(output) {
            scale = scale.nextUp
        }
        return scale
    }

    private mutating func resizeAttributes(_ node: Node, _ a: ResizingAttributes) throws -> [ONNXAttribute] {
        var attributes: [ONNXAttribute]
        switch a.interpolation {
        case .nearest:
            // Keras (JAX and TensorFlow alike) reads input floor((i + 0.5) * in / out): half_pixel's
            // (i + 0.5) * in / out - 0.5 rounded with halves up (tf_half_pixel_for_nn with floor
            // says the same, but is deprecated since opset 13).
            return [.string("mode", "nearest"), .string("coordinate_transformation_mode", "half_pixel"),
                    .string("nearest_mode", "round_prefer_ceil")]
        case .bilinear:
            attributes = [.string("mode", "linear"), .string("coordinate_transformation_mode", "half_pixel")]
        case .bicubic:
            if a.tabulatedCubic {
                throw unsupported(node, "tf.keras's bicubic Resizing reads its weights from a 1024-step table; ONNX Resize's "
                                  + "cubic computes them exactly (differences up to ~2e-3)")
            }
            attributes = [.string("mode", "cubic"), .string("coordinate_transformation_mode", "half_pixel"),
                          .float("cubic_coeff_a", -0.5), .int("exclude_outside", 1)]
        case .lanczos3, .lanczos5:
            throw unsupported(node, "Resizing with \(a.interpolation.rawValue) interpolation: ONNX Resize has no Lanczos kernel")
        case .area:
            throw unsupported(node, "Resizing with area interpolation: ONNX Resize has no area kernel")
        }
        if a.antialias {
            guard hasNative(18) else {
                throw unsupported(node, "Resizing with antialias needs ONNX Resize's antialias (opset 18 or later; this export is opset \(opset))")
            }
            attributes.append(.int("antialias", 1))
            // JAX renormalises the weights over the samples inside the image, which onnxruntime's
            // antialiased linear kernel does only with exclude_outside (measured: 0.2 off without;
            // onnxruntime refuses it on linear without antialias, where clamping agrees anyway).
            if a.interpolation == .bilinear { attributes.append(.int("exclude_outside", 1)) }
        }
        return attributes
    }
}
