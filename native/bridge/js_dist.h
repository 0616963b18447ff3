// What other bridge classes need of a JS `Distributed` (js_dist.cc): its process group.
#pragma once

#include <napi.h>

#include <memory>

#include "dist/process_group.h"

namespace medgr2 {

// The process group behind `value`, a Distributed from Distributed.create; an argument error naming
// `where` and `name` for anything else, a Napi::Error when the group is closed.
std::shared_ptr<dist::ProcessGroup> ProcessGroupFromJs(const Napi::Value& value, const char* where, const char* name);

}  // namespace medgr2
