// timeline.h - a picture over time: `record` samples a process's segment into a file until it
// exits; `plot` draws the file as an SVG (memory over time, hit rate per interval, live bytes by
// size class). See docs/stats.md, "Timeline".
#pragma once

namespace castats {

// cachealloc-stats record PID -o FILE [--interval=SECONDS] [--dir DIR]; argv[0] is "record".
int record_main(int argc, char** argv);
// cachealloc-stats plot FILE -o CHART.svg; argv[0] is "plot".
int plot_main(int argc, char** argv);

}  // namespace castats
