import Foundation
import ScionImages
import XCTest

/// Tests/Hostile/images.json (made by make_corpus.py): broken images and a data folder with links
/// out of it. Each file must fail with one error naming it and the expected reason, before any
/// allocation its header asks for (the 60,000 x 60,000 ones are refused from the header alone).
final class HostileImageTests: XCTestCase {
    struct Case: Decodable {
        var file: String
        var expect: String
    }

    static let folder = ImageFixtures.root.appendingPathComponent("Tests/Hostile")

    func testEveryHostileImageIsOneErrorNamingTheFile() throws {
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: Self.folder.appendingPathComponent("images.json")))
        XCTAssertGreaterThanOrEqual(cases.count, 10)
        for item in cases where item.file.hasPrefix("image_") && item.file.contains(".") {
            let path = Self.folder.appendingPathComponent(item.file).path
            for channels in [1, 3] {
                XCTAssertThrowsError(try ImageDecoder.decode(file: path, options: DecodeOptions(channels: channels)), item.file) { error in
                    let text = String(describing: error)
                    XCTAssertTrue(text.hasPrefix(path + ": "), text)
                    XCTAssertTrue(text.contains(item.expect), "\(item.file): expected '\(item.expect)' in \(text)")
                    XCTAssertFalse(text.contains("\n"), text)
                }
            }
        }
    }

    func testLinksOutOfTheDataFolderAreNeverFollowedAndAreReported() throws {
        let folder = Self.folder.appendingPathComponent("image_links").path
        let unfollowed = try ImageFolderIndex(folder: folder)
        XCTAssertEqual(unfollowed.samples.map(\.relativePath), ["digit/good.png"])
        XCTAssertEqual(unfollowed.skipped.map(\.file), [folder + "/digit/passwd.png", folder + "/digit/script.jpg"])
        XCTAssertTrue(unfollowed.skipped.allSatisfy { $0.description.contains("is a symbolic link") }, "\(unfollowed.skipped)")

        let followed = try ImageFolderIndex(folder: folder, followLinks: true)
        XCTAssertEqual(followed.samples.map(\.relativePath), ["digit/good.png"])
        XCTAssertEqual(followed.skipped.count, 2)
        XCTAssertTrue(followed.skipped.allSatisfy { $0.description.contains("outside the data folder") }, "\(followed.skipped)")
    }

    func testLinksInsideTheFolderAreFollowedOnlyWhenAsked() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("scion-links-\(getpid())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let classFolder = folder.appendingPathComponent("cls")
        try FileManager.default.createDirectory(at: classFolder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: ImageFixtures.folder + "/one/one_00.png", toPath: classFolder.appendingPathComponent("a.png").path)
        try FileManager.default.createSymbolicLink(atPath: classFolder.appendingPathComponent("b.png").path, withDestinationPath: "a.png")
        XCTAssertEqual(try ImageFolderIndex(folder: folder.path).samples.map(\.relativePath), ["cls/a.png"])
        XCTAssertEqual(try ImageFolderIndex(folder: folder.path, followLinks: true).samples.map(\.relativePath), ["cls/a.png", "cls/b.png"])
    }

    /// A folder read without labels (predict on a folder of images) follows the class folders' rules:
    /// Keras's labels=None listing (sub-folders and hidden files too), links reported unless followed.
    func testUnlabelledFoldersFollowTheClassFoldersRules() throws {
        let links = Self.folder.appendingPathComponent("image_links").path
        XCTAssertTrue(ImageFolderIndex.hasClassFolders(links))
        let asOneFolder = try ImageFolderIndex.unlabelled(folder: links + "/digit")
        XCTAssertEqual(asOneFolder.samples.map(\.relativePath), ["good.png"])
        XCTAssertEqual(asOneFolder.skipped.map(\.file), [links + "/digit/passwd.png", links + "/digit/script.jpg"])

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("scion-unlabelled-\(getpid())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let hidden = folder.appendingPathComponent(".thumbnails")
        try FileManager.default.createDirectory(at: hidden, withIntermediateDirectories: true)
        for name in ["b.png", ".a.png", "notes.txt", ".thumbnails/c.PNG"] {
            try FileManager.default.copyItem(atPath: ImageFixtures.folder + "/one/one_00.png", toPath: folder.appendingPathComponent(name).path)
        }
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("linked").path, withDestinationPath: ".thumbnails")
        // Neither a hidden folder nor an unfollowed link makes a class folder.
        XCTAssertFalse(ImageFolderIndex.hasClassFolders(folder.path))
        XCTAssertTrue(ImageFolderIndex.hasClassFolders(folder.path, followLinks: true))
        let listed = try ImageFolderIndex.unlabelled(folder: folder.path)
        XCTAssertEqual(listed.samples.map(\.relativePath), [".a.png", "b.png", ".thumbnails/c.PNG"])
        XCTAssertEqual(listed.samples.map(\.path), listed.samples.map { folder.path + "/" + $0.relativePath })
        XCTAssertEqual(Set(listed.samples.map(\.label)), [0])
        XCTAssertEqual(listed.skipped.map(\.file), [folder.path + "/linked"])
        XCTAssertThrowsError(try ImageFolderIndex.unlabelled(folder: folder.path + "/b.png"))
    }

    func testBadImagesAreSkippedOrFatalInBatches() throws {
        let good = ImageSample(path: ImageFixtures.folder + "/one/one_00.png", relativePath: "one/one_00.png", label: 0)
        let bad = ImageSample(path: Self.folder.appendingPathComponent("image_truncated.jpg").path, relativePath: "x", label: 1)
        let pipeline = ImagePipeline(resize: ResizeOptions(height: 4, width: 4))
        let skipping = try ImageBatches(samples: [good, bad, good], batchSize: 8, pipeline: pipeline, policy: .skip).batch(0)
        XCTAssertEqual(skipping.count, 2)
        XCTAssertEqual(skipping.pixels.count, 2 * 4 * 4 * 3)
        XCTAssertEqual(skipping.failures.map(\.file), [bad.path])
        XCTAssertThrowsError(try ImageBatches(samples: [good, bad], batchSize: 8, pipeline: pipeline, policy: .fail).makeStream().next())
    }

    func testFolderErrorsNameTheFolder() {
        XCTAssertThrowsError(try ImageFolderIndex(folder: "/nonexistent/folder")) { XCTAssertTrue("\($0)".hasPrefix("/nonexistent/folder: ")) }
        XCTAssertThrowsError(try ImageFolderIndex(folder: ImageFixtures.folder, classNames: ["one", "eight"])) {
            XCTAssertTrue("\($0)".contains("no class folder named 'eight'"), "\($0)")
        }
        XCTAssertEqual(try ImageFolderIndex(folder: ImageFixtures.folder, classNames: ["three", "one"]).samples.first?.relativePath, "three/three_00.png")
    }
}
