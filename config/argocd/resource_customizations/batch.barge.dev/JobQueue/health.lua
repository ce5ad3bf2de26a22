-- Argo CD health of a Barge JobQueue (batch.barge.dev): Progressing until Barge has validated
-- the current generation (status.observedGeneration = metadata.generation), then Degraded when
-- INVALID and Healthy when VALID, ENABLED or DISABLED alike (DISABLED is a state chosen in the
-- spec, not a fault). A VALID queue whose compute environments have no Ready node now (scaled
-- to zero) is Healthy: it takes jobs, and capacity comes with them. The message is statusReason.
-- Argo CD runs this in gopher-lua (Lua 5.1); `obj` is the JobQueue as the API server returns it.
local hs = {}

if obj.status == nil or obj.status.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Barge to validate the job queue"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Barge to validate generation " .. tostring(generation)
  if observed ~= nil then
    hs.message = hs.message .. " (the status describes generation " .. tostring(observed) .. ")"
  end
  return hs
end

local reason = obj.status.statusReason
if reason == nil then
  reason = ""
end

if obj.status.status == "INVALID" then
  hs.status = "Degraded"
  hs.message = "INVALID: " .. reason
  return hs
end

if obj.status.status == "VALID" then
  local state = "ENABLED"
  if obj.spec ~= nil and obj.spec.state ~= nil then
    state = obj.spec.state
  end
  hs.status = "Healthy"
  hs.message = "VALID, " .. state .. ": " .. reason
  return hs
end

hs.status = "Progressing"
hs.message = obj.status.status .. ": " .. reason
return hs
