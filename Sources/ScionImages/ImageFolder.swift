import Foundation

/// One image of a folder: its path (the folder joined with `relativePath`, as Keras builds
/// file_paths) and its class index.
public struct ImageSample: Equatable, Sendable {
    public var path: String
    public var relativePath: String
    public var label: Int

    public init(path: String, relativePath: String, label: Int) {
        self.path = path
        self.relativePath = relativePath
        self.label = label
    }
}

/// A folder indexed as Keras's `index_directory` (keras/src/utils/dataset_utils.py) does it with
/// labels="inferred": one class per sub-folder not starting with ".", sorted by name (or the order
/// of `classNames`, a subset of them); each class folder walked recursively, folders in the order of
/// their paths, files sorted within a folder, those whose lowercased name ends with an allowed
/// extension kept (Keras's list: .bmp .gif .jpeg .jpg .png; BMP and GIF are indexed so that splits
/// match Keras, and fail to decode with a clear reason).
///
/// Symbolic links differ from Keras on purpose: Keras reads linked files and linked class folders
/// even with follow_links=False. Here no link is followed unless `followLinks`, and a link whose
/// target lies outside the data folder never is; each skipped link (that would have been indexed)
/// is reported in `skipped`, like a broken file.
public struct ImageFolderIndex: Sendable {
    public var folder: String
    public var classNames: [String]
    public var samples: [ImageSample]
    public var skipped: [ImageError]

    public static let kerasFormats = [".bmp", ".gif", ".jpeg", ".jpg", ".png"]

    public init(folder: String, classNames: [String]? = nil, followLinks: Bool = false,
                formats: [String] = ImageFolderIndex.kerasFormats) throws(ImageError) {
        self.folder = folder
        var walker = Walker(folder: folder, followLinks: followLinks, formats: formats)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw ImageError(file: folder, reason: .folder("is not a folder"))
        }
        let subfolders = try walker.entries(of: folder).filter { !$0.hasPrefix(".") }.filter { name in
            walker.classFolder(folder + "/" + name)
        }
        if let classNames {
            let missing = classNames.filter { !subfolders.contains($0) }
            guard missing.isEmpty else {
                throw ImageError(file: folder, reason: .folder(
                    "has no class folder named \(missing.map { "'\($0)'" }.joined(separator: ", ")) (its class folders: \(subfolders.joined(separator: ", ")))"))
            }
            self.classNames = classNames
        } else {
            self.classNames = subfolders
        }
        guard !self.classNames.isEmpty else {
            throw ImageError(file: folder, reason: .folder("has no class folders (one sub-folder of images per class)"))
        }
        samples = []
        for (label, name) in self.classNames.enumerated() {
            for relative in try walker.files(in: name) {
                samples.append(ImageSample(path: folder + "/" + relative, relativePath: relative, label: label))
            }
        }
        skipped = walker.skipped
    }

    /// Whether `folder` holds a class folder (a sub-folder whose name does not start with ".", a
    /// linked one only when `followLinks` and it stays inside): then it reads as one folder per class.
    public static func hasClassFolders(_ folder: String, followLinks: Bool = false) -> Bool {
        var walker = Walker(folder: folder, followLinks: followLinks, formats: kerasFormats)
        let names = (try? walker.entries(of: folder)) ?? []
        return names.contains { !$0.hasPrefix(".") && walker.classFolder(folder + "/" + $0) }
    }

    /// The images of a folder read without labels, as Keras's image_dataset_from_directory(labels=None)
    /// indexes it (the whole folder walked as one class folder is: sub-folders too, Keras's order and
    /// formats), with the same link rules as class folders; every label 0. Skipped links in `skipped`.
    public static func unlabelled(folder: String, followLinks: Bool = false,
                                  formats: [String] = kerasFormats) throws(ImageError) -> (samples: [ImageSample], skipped: [ImageError]) {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw ImageError(file: folder, reason: .folder("is not a folder"))
        }
        var walker = Walker(folder: folder, followLinks: followLinks, formats: formats)
        let samples = try walker.files(in: "").map { ImageSample(path: folder + "/" + $0, relativePath: $0, label: 0) }
        return (samples, walker.skipped)
    }

    /// Keras's order: with `seed`, numpy's RandomState(seed).shuffle of the file list (and, with the
    /// same seed, of the labels: the same permutation); without, the index order.
    public func ordered(seed: UInt32?) -> [ImageSample] {
        guard let seed else { return samples }
        var random = NumpyRandomState(seed: seed)
        var shuffled = samples
        random.shuffle(&shuffled)
        return shuffled
    }

    /// Keras's get_training_or_validation_split after `ordered(seed:)`: the last
    /// int(fraction * count) samples for validation, the rest for training.
    public func split(validationFraction: Double, seed: UInt32?) throws(ImageError) -> (training: [ImageSample], validation: [ImageSample]) {
        guard validationFraction > 0, validationFraction < 1 else {
            throw ImageError(file: folder, reason: .folder("validation split \(validationFraction) is not between 0 and 1"))
        }
        let all = ordered(seed: seed)
        let validationCount = Int(validationFraction * Double(all.count))
        guard validationCount > 0, validationCount < all.count else {
            throw ImageError(file: folder, reason: .folder(
                "validation split \(validationFraction) of \(all.count) images leaves \(validationCount == 0 ? "no validation" : "no training") image"))
        }
        return (Array(all[..<(all.count - validationCount)]), Array(all[(all.count - validationCount)...]))
    }
}

/// os.walk as index_subdirectory uses it, with Scion's link rules.
private struct Walker {
    let folder: String
    let followLinks: Bool
    let formats: [String]
    let realFolder: String
    var skipped: [ImageError] = []
    var visited: Set<String> = []

    init(folder: String, followLinks: Bool, formats: [String]) {
        self.folder = folder
        self.followLinks = followLinks
        self.formats = formats
        realFolder = URL(fileURLWithPath: folder).resolvingSymlinksInPath().path
    }

    func entries(of path: String) throws(ImageError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path).sorted(by: pythonOrder)
        } catch {
            throw ImageError(file: path, reason: .unreadable((error as NSError).localizedDescription))
        }
    }

    private enum Kind { case folder, file, other }

    private func kind(_ path: String, following: Bool) -> Kind {
        var info = stat()
        guard (following ? stat(path, &info) : lstat(path, &info)) == 0 else { return .other }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .folder
        case S_IFREG: return .file
        case S_IFLNK: return .other
        default: return .other
        }
    }

    private func isLink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK
    }

    /// The link's target when it may be followed; otherwise the link is reported (when `report`).
    private mutating func followable(_ path: String, report: Bool) -> Bool {
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
        guard followLinks else {
            if report { skipped.append(ImageError(file: path, reason: .symbolicLink(target: target))) }
            return false
        }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard resolved == realFolder || resolved.hasPrefix(realFolder + "/") else {
            if report { skipped.append(ImageError(file: path, reason: .linkLeavesFolder(target: target, folder: folder))) }
            return false
        }
        return true
    }

    /// Whether a top-level entry is a class folder (a linked one only when it may be followed).
    mutating func classFolder(_ path: String) -> Bool {
        if isLink(path) {
            guard kind(path, following: true) == .folder else { return false }
            return followable(path, report: true)
        }
        return kind(path, following: false) == .folder
    }

    private func allowed(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return formats.contains { lowered.hasSuffix($0) }
    }

    /// `name` inside `relative` ("" is the data folder itself).
    private func joined(_ relative: String, _ name: String) -> String { relative.isEmpty ? name : relative + "/" + name }

    /// The class folder's image files ("": the data folder's own), relative to the data folder, in Keras's order.
    mutating func files(in className: String) throws(ImageError) -> [String] {
        var folders: [(path: String, files: [String])] = []
        try walk(className, into: &folders)
        folders.sort { pythonOrder($0.path, $1.path) }
        return folders.flatMap { folder in folder.files.map { joined(folder.path, $0) } }
    }

    private mutating func walk(_ relative: String, into folders: inout [(path: String, files: [String])]) throws(ImageError) {
        let path = relative.isEmpty ? folder : folder + "/" + relative
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard visited.insert(real).inserted else { return }   // a linked loop
        var files: [String] = []
        var subfolders: [String] = []
        for name in try entries(of: path) {
            let entry = path + "/" + name
            if isLink(entry) {
                switch kind(entry, following: true) {
                case .folder: if followable(entry, report: true) { subfolders.append(name) }
                case .file: if allowed(name), followable(entry, report: true) { files.append(name) }
                case .other: if allowed(name) { skipped.append(ImageError(file: entry, reason: .symbolicLink(target: "a missing file"))) }
                }
                continue
            }
            switch kind(entry, following: false) {
            case .folder: subfolders.append(name)
            case .file: if allowed(name) { files.append(name) }
            case .other: break
            }
        }
        folders.append((relative, files))
        for name in subfolders { try walk(joined(relative, name), into: &folders) }
    }
}

/// Python's string order (code point by code point), which Keras's sorted() uses.
func pythonOrder(_ a: String, _ b: String) -> Bool {
    a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
}
