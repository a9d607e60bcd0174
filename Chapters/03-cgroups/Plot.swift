// --plot FILE.svg: CPU and memory over time, with the limits drawn, for slides and notes.
import Isolation
import SystemPackage

/// A run's samples, with the limits in force while they were taken.
struct PlotSegment {
    var title: String
    var samples: [Sample]
    var limits: ResourceLimits
}

enum Plot {
    /// Writes an SVG with two charts, CPU (in CPUs) and memory (in MiB), over one time
    /// axis. Each act is a segment; its limits are dashed red lines over its span.
    static func write(_ segments: [PlotSegment], to path: FilePath) throws {
        let width = 900.0, chartHeight = 220.0, left = 70.0, right = 20.0, top = 40.0, gap = 60.0
        let all = segments.flatMap(\.samples)
        let maxTime = max(all.map(\.time).max() ?? 1, 1)
        let maxCPU = max(all.map(\.cpus).max() ?? 1, segments.compactMap(\.limits.cpus).max() ?? 0, 1) * 1.1
        let mib = 1048576.0
        let maxMemory = max(Double(all.map(\.memoryBytes).max() ?? 0) / mib,
                            segments.compactMap { $0.limits.memoryBytes.map { Double($0) / mib } }.max() ?? 0, 1) * 1.1
        let plotWidth = width - left - right
        func x(_ t: Double) -> Double { left + t / maxTime * plotWidth }

        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(top + 2 * chartHeight + gap + 50))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="22" font-size="15" font-weight="bold">cgroup limits under stress: what the kernel counted</text>

        """
        for (index, chart) in [("CPU (CPUs)", maxCPU), ("memory (MiB)", maxMemory)].enumerated() {
            let y0 = top + Double(index) * (chartHeight + gap)
            func y(_ value: Double) -> Double { y0 + chartHeight - value / chart.1 * chartHeight }
            svg += "<text x=\"\(left)\" y=\"\(y0 - 8)\" font-weight=\"bold\">\(chart.0)</text>\n"
            svg += "<rect x=\"\(left)\" y=\"\(y0)\" width=\"\(plotWidth)\" height=\"\(chartHeight)\" fill=\"none\" stroke=\"#999\"/>\n"
            for tick in 0...4 {
                let value = chart.1 * Double(tick) / 4
                svg += "<text x=\"\(left - 8)\" y=\"\(y(value) + 4)\" text-anchor=\"end\">\(format1(value))</text>\n"
            }
            for segment in segments where !segment.samples.isEmpty {
                let values = segment.samples.map { index == 0 ? $0.cpus : Double($0.memoryBytes) / mib }
                let points = zip(segment.samples, values).map { "\(format1(x($0.time))),\(format1(y($1)))" }.joined(separator: " ")
                svg += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(index == 0 ? "#1f77b4" : "#2ca02c")\" stroke-width=\"2\"/>\n"
                let limit = index == 0 ? segment.limits.cpus : segment.limits.memoryBytes.map { Double($0) / mib }
                let span = (x(segment.samples.first!.time), x(segment.samples.last!.time))
                if let limit {
                    svg += "<line x1=\"\(format1(span.0))\" y1=\"\(format1(y(limit)))\" x2=\"\(format1(span.1))\" y2=\"\(format1(y(limit)))\" stroke=\"#d62728\" stroke-dasharray=\"6,4\" stroke-width=\"2\"/>\n"
                    svg += "<text x=\"\(format1(span.0 + 4))\" y=\"\(format1(y(limit) - 5))\" fill=\"#d62728\">limit \(format1(limit))</text>\n"
                }
                if index == 0 {
                    svg += "<text x=\"\(format1(span.0 + 4))\" y=\"\(format1(y0 + 14))\" fill=\"#555\">\(escape(segment.title))</text>\n"
                }
            }
        }
        let axisY = top + 2 * chartHeight + gap + 20
        svg += "<text x=\"\(left + plotWidth / 2)\" y=\"\(axisY)\" text-anchor=\"middle\">time (s), 0 – \(format1(maxTime))</text>\n"
        svg += "</svg>\n"
        try FileSystem.writeFile(path, svg)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
