// tools/ranks.h — what every command-line tool does to run as one rank of an mpirun job.
//
// start_ranks() sets up the process group (core/distributed.h) and gives this rank its share of the
// machine: its GPU (the rank's index among the ranks on this machine) and its CPU threads (the
// machine's cores divided among its ranks, unless OMP_NUM_THREADS says otherwise). run_ranked() runs
// the tool's body and turns an error into one line on stderr, tagged with the rank when there are
// several; in a job of several ranks it then ends the whole job (MPI_Abort), so no other rank is
// left waiting in a collective for one that is gone.
#pragma once
#include <functional>

namespace fm::tools {

// start_ranks(argc, argv), then body; body's return value is the exit code; fm::Error → 2, any other
// exception → 1 (also from the set-up itself).
int run_ranked(const char* tool, int* argc, char*** argv, const std::function<int()>& body);
void start_ranks(int* argc, char*** argv);

}  // namespace fm::tools
