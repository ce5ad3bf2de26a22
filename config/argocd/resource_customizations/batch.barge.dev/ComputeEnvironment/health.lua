-- Argo CD health of a Barge ComputeEnvironment (batch.barge.dev): Progressing until Barge has
-- reconciled the current generation (status.observedGeneration = metadata.generation) and while
-- CREATING, UPDATING or DELETING; Degraded when INVALID; Healthy when VALID, ENABLED or DISABLED
-- alike (DISABLED is a state chosen in the spec, not a fault), with or without nodes (a managed
-- environment at minvCpus 0 has none until work comes). The message is statusReason.
-- Argo CD runs this in gopher-lua (Lua 5.1); `obj` is the environment as the API server returns
-- it.
local hs = {}

if obj.status == nil or obj.status.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Barge to validate the compute environment"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Barge to reconcile generation " .. tostring(generation)
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

-- CREATING, UPDATING, DELETING
hs.status = "Progressing"
hs.message = obj.status.status .. ": " .. reason
return hs
