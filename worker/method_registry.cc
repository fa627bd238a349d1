#include "worker/method_registry.h"

#include <map>
#include <mutex>

#include "worker/methods/sleep_method.h"

namespace atp {
namespace {
std::map<std::string, MethodFunction>& Registry() {
  static std::map<std::string, MethodFunction> registry;
  return registry;
}
std::mutex& RegistryMutex() {
  static std::mutex mutex;
  return mutex;
}
}  // namespace

bool RegisterMethod(const std::string& name, MethodFunction fn) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry()[name] = std::move(fn);
  return true;
}

const MethodFunction* FindMethodFunction(const std::string& name) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto it = Registry().find(name);
  return it == Registry().end() ? nullptr : &it->second;
}

// Explicit registration (rather than static initialisers in each method's unit) so that a
// static library never drops a method the linker thought unused.
void RegisterBuiltinMethods() {
  static const bool registered = [] {
    RegisterMethod("sleep", RunSleepMethod);
    return true;
  }();
  (void)registered;
}

}  // namespace atp
