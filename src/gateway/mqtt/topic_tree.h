// Topic filters → subscribers, as a trie over topic levels (MQTT 5.0 §4.7). Not thread-safe:
// the broker guards it with its mutex.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tarn::gateway::mqtt {

template <typename Sub>
class TopicTree {
 public:
  struct Node {
    std::unordered_map<std::string, std::unique_ptr<Node>> children;
    std::vector<Sub> subs;
    bool Empty() const { return children.empty() && subs.empty(); }
  };

  // Adds `sub` under `filter` (a valid topic filter).
  void Add(std::string_view filter, Sub sub) { Walk(filter, true)->subs.push_back(std::move(sub)); }

  // Removes the entries under `filter` for which pred(sub) is true; prunes empty nodes.
  template <typename Pred>
  void Remove(std::string_view filter, Pred pred) {
    std::vector<std::pair<Node*, std::string>> path;
    Node* n = &root_;
    for (std::string_view level : Split(filter)) {
      auto it = n->children.find(std::string(level));
      if (it == n->children.end()) return;
      path.emplace_back(n, std::string(level));
      n = it->second.get();
    }
    auto& v = n->subs;
    v.erase(std::remove_if(v.begin(), v.end(), pred), v.end());
    for (size_t i = path.size(); i-- > 0;) {
      Node* parent = path[i].first;
      auto it = parent->children.find(path[i].second);
      if (it == parent->children.end() || !it->second->Empty()) break;
      parent->children.erase(it);
    }
  }

  // Visits every node whose filter matches `topic`; fn(std::vector<Sub>&).
  template <typename Fn>
  void Match(std::string_view topic, Fn&& fn) {
    std::vector<std::string_view> levels = Split(topic);
    bool dollar = !topic.empty() && topic[0] == '$';
    MatchAt(&root_, levels, 0, dollar, fn);
  }

 private:
  static std::vector<std::string_view> Split(std::string_view s) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (;;) {
      size_t slash = s.find('/', start);
      if (slash == std::string_view::npos) {
        out.push_back(s.substr(start));
        return out;
      }
      out.push_back(s.substr(start, slash - start));
      start = slash + 1;
    }
  }

  Node* Walk(std::string_view filter, bool create) {
    Node* n = &root_;
    for (std::string_view level : Split(filter)) {
      auto& child = n->children[std::string(level)];
      if (!child) {
        if (!create) return nullptr;
        child = std::make_unique<Node>();
      }
      n = child.get();
    }
    return n;
  }

  template <typename Fn>
  static void MatchAt(Node* n, const std::vector<std::string_view>& levels, size_t i, bool dollar,
                      Fn& fn) {
    // §4.7.2: a filter starting with a wildcard does not match a topic starting with '$'.
    bool wild_ok = !(i == 0 && dollar);
    if (wild_ok) {
      auto hash = n->children.find("#");
      if (hash != n->children.end() && !hash->second->subs.empty()) fn(hash->second->subs);
    }
    if (i == levels.size()) {
      if (!n->subs.empty()) fn(n->subs);
      return;
    }
    if (n->children.empty()) return;
    auto it = n->children.find(std::string(levels[i]));
    if (it != n->children.end()) MatchAt(it->second.get(), levels, i + 1, dollar, fn);
    if (wild_ok) {
      auto plus = n->children.find("+");
      if (plus != n->children.end()) MatchAt(plus->second.get(), levels, i + 1, dollar, fn);
    }
  }

  Node root_;
};

}  // namespace tarn::gateway::mqtt
