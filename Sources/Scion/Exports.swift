// `import Scion` alone gives a Swift user the whole workflow: the IR (`Graph`, `Node`, `Parameter`),
// the passes (`CutPass`, `GraftPass`, `FreezePass`), the executor and the trainer. The format
// readers and writers (ScionKeras, ScionONNX) stay behind `Model.load` and `model.write(to:)`.
@_exported import ScionIR
@_exported import ScionPasses
@_exported import ScionRuntime
